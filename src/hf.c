// hf.c: Hugging Face model directories (hf.h). Rank 0 does the file I/O;
// tensors move through shard.c's scatters and gathers, so any layout reads
// and writes the same directory.
#include "hf.h"
#include "input.h"

#include <errno.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "outfile.h"
#include "safetensors.h"
#include "shard.h"

#define CONFIG_MAX ((size_t)1 << 20)   // a config.json is a few hundred bytes
#define INDEX_MAX ((size_t)16 << 20)   // an index names every tensor once
#define MAX_SHARDS 256

int mt_hf_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

// A small text file (regular, at most max bytes), NUL-terminated; NULL with
// a line in err.
static char *read_small(const char *path, size_t max, size_t *len, char *err, size_t errlen) {
    // Non-blocking, regular, size-bounded (input.h): a FIFO is refused.
    return mt_input_read_small(path, "", max, 0, len, err, errlen);
}

static mt_json *read_json(const char *path, size_t max, char *err, size_t errlen) {
    size_t len;
    char *text = read_small(path, max, &len, err, errlen);
    if (!text) return NULL;
    char why[256];
    mt_json *j = mt_json_parse(text, len, why, sizeof why);
    free(text);
    if (!j) snprintf(err, errlen, "%s: not valid JSON (%s)", path, why);
    else if (j->type != MT_JSON_OBJECT) { snprintf(err, errlen, "%s: not a JSON object", path); mt_json_free(j); j = NULL; }
    return j;
}

// ---- config.json -----------------------------------------------------------------

typedef struct { const mt_json *j; const char *path; char *err; size_t errlen; } cfg_reader;

// An integer key in [lo, hi]; absent: def (def < lo: required).
static int get_int(cfg_reader *r, const char *key, long lo, long hi, long def, int *out) {
    const mt_json *v = mt_json_get(r->j, key);
    if (!v || v->type == MT_JSON_NULL) {
        if (def < lo) { snprintf(r->err, r->errlen, "%s: lacks \"%s\"", r->path, key); return -1; }
        *out = (int)def;
        return 0;
    }
    if (v->type != MT_JSON_NUMBER || v->number != floor(v->number) || v->number < lo || v->number > hi) {
        snprintf(r->err, r->errlen, "%s: \"%s\" must be an integer in [%ld, %ld]", r->path, key, lo, hi);
        return -1;
    }
    *out = (int)v->number;
    return 0;
}

static int get_num(cfg_reader *r, const char *key, double def, double *out) {
    const mt_json *v = mt_json_get(r->j, key);
    if (!v || v->type == MT_JSON_NULL) { *out = def; return 0; }
    if (v->type != MT_JSON_NUMBER || !(v->number > 0)) {
        snprintf(r->err, r->errlen, "%s: \"%s\" must be a positive number", r->path, key);
        return -1;
    }
    *out = v->number;
    return 0;
}

static int get_bool(cfg_reader *r, const char *key, int def, int *out) {
    const mt_json *v = mt_json_get(r->j, key);
    if (!v || v->type == MT_JSON_NULL) { *out = def; return 0; }
    if (v->type != MT_JSON_BOOL) { snprintf(r->err, r->errlen, "%s: \"%s\" must be true or false", r->path, key); return -1; }
    *out = (int)v->number;
    return 0;
}

// A string key that must equal one of the accepted values (absent: ok).
static int want_str(cfg_reader *r, const char *key, const char *a, const char *b) {
    const mt_json *v = mt_json_get(r->j, key);
    if (!v) return 0;
    if (v->type != MT_JSON_STRING || (strcmp(v->string, a) && (!b || strcmp(v->string, b)))) {
        snprintf(r->err, r->errlen, "%s: \"%s\" is %s%s%s; this trainer implements %s%s%s", r->path, key,
                 v->type == MT_JSON_STRING ? "'" : "", v->type == MT_JSON_STRING ? v->string : "not a string",
                 v->type == MT_JSON_STRING ? "'" : "", a, b ? " or " : "", b ? b : "");
        return -1;
    }
    return 0;
}

static int read_gpt2(cfg_reader *r, mt_hf_config *h) {
    h->arch = MT_HF_GPT2;
    h->bias = 1;
    h->rope_theta = 10000;
    h->rotary_percent = 1;
    int n_pos;
    if (get_int(r, "n_layer", 1, 4096, 0, &h->layers) || get_int(r, "n_embd", 1, 65536, 0, &h->hidden) ||
        get_int(r, "n_head", 1, 65535, 0, &h->heads) || get_int(r, "vocab_size", 2, 1 << 24, 0, &h->vocab) ||
        get_int(r, "n_ctx", 1, 1 << 20, 1024, &n_pos) || get_int(r, "n_positions", 1, 1 << 20, n_pos, &h->max_pos) ||
        get_num(r, "layer_norm_epsilon", 1e-5, &h->norm_eps) || get_bool(r, "tie_word_embeddings", 1, &h->tied) ||
        want_str(r, "activation_function", "gelu_new", "gelu_pytorch_tanh"))
        return -1;
    h->kv_heads = h->heads;
    return get_int(r, "n_inner", 1, 1 << 20, 4L * h->hidden, &h->ffn);
}

static int read_llama(cfg_reader *r, mt_hf_config *h) {
    h->arch = MT_HF_LLAMA;
    int ab, mb, head_dim;
    if (get_int(r, "num_hidden_layers", 1, 4096, 0, &h->layers) || get_int(r, "hidden_size", 1, 65536, 0, &h->hidden) ||
        get_int(r, "num_attention_heads", 1, 65535, 0, &h->heads) ||
        get_int(r, "num_key_value_heads", 1, 65535, h->heads, &h->kv_heads) ||
        get_int(r, "intermediate_size", 1, 1 << 20, 0, &h->ffn) || get_int(r, "vocab_size", 2, 1 << 24, 0, &h->vocab) ||
        get_int(r, "max_position_embeddings", 1, 1 << 20, 2048, &h->max_pos) ||
        get_num(r, "rms_norm_eps", 1e-6, &h->norm_eps) || get_num(r, "rope_theta", 10000, &h->rope_theta) ||
        get_num(r, "partial_rotary_factor", 1, &h->rotary_percent) || get_bool(r, "tie_word_embeddings", 0, &h->tied) ||
        get_bool(r, "attention_bias", 0, &ab) || get_bool(r, "mlp_bias", 0, &mb) || want_str(r, "hidden_act", "silu", NULL))
        return -1;
    // Rotating more dims than a head has would write past each row (RoPE
    // pairs dim i with i + rot/2): Hugging Face's own range is (0, 1].
    if (!(h->rotary_percent > 0 && h->rotary_percent <= 1)) {
        snprintf(r->err, r->errlen, "%s: \"partial_rotary_factor\" %g must be in (0, 1]", r->path, h->rotary_percent);
        return -1;
    }
    if (h->heads && h->hidden % h->heads == 0 && get_int(r, "head_dim", 1, 65536, h->hidden / h->heads, &head_dim)) return -1;
    if (h->heads && h->hidden % h->heads == 0 && head_dim != h->hidden / h->heads) {
        snprintf(r->err, r->errlen, "%s: \"head_dim\" %d differs from hidden_size / num_attention_heads (%d): not supported",
                 r->path, head_dim, h->hidden / h->heads);
        return -1;
    }
    const mt_json *rs = mt_json_get(r->j, "rope_scaling");
    if (rs && rs->type != MT_JSON_NULL) { snprintf(r->err, r->errlen, "%s: \"rope_scaling\" is not supported (plain RoPE only)", r->path); return -1; }
    if (ab != mb) { snprintf(r->err, r->errlen, "%s: attention_bias and mlp_bias differ; one switch covers all linear biases here (--disable-bias-linear)", r->path); return -1; }
    h->bias = ab;
    return 0;
}

int mt_hf_read_config(const char *dir, mt_hf_config *h, char *err, size_t errlen) {
    char path[1200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    memset(h, 0, sizeof *h);
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) {
        snprintf(err, errlen, "%s: a directory without config.json (a Hugging Face model directory holds config.json and "
                              "model.safetensors; an llm.c model is a file)", dir);
        return -1;
    }
    mt_json *j = read_json(path, CONFIG_MAX, err, errlen);
    if (!j) return -1;
    cfg_reader r = {j, path, err, errlen};
    const mt_json *arch = mt_json_get(j, "architectures");
    const char *a = arch && arch->type == MT_JSON_ARRAY && arch->n == 1 && arch->items[0].type == MT_JSON_STRING
                        ? arch->items[0].string : NULL;
    int rc;
    if (a && !strcmp(a, "GPT2LMHeadModel")) rc = read_gpt2(&r, h);
    else if (a && !strcmp(a, "LlamaForCausalLM")) rc = read_llama(&r, h);
    else {
        snprintf(err, errlen, "%s: \"architectures\" must be [\"GPT2LMHeadModel\"] or [\"LlamaForCausalLM\"]%s%s", path,
                 a ? ", got " : "", a ? a : "");
        rc = -1;
    }
    if (!rc && h->hidden % h->heads) {
        snprintf(err, errlen, "%s: hidden size %d is not divisible by the %d attention heads", path, h->hidden, h->heads);
        rc = -1;
    }
    if (!rc && h->heads % h->kv_heads) {
        snprintf(err, errlen, "%s: %d attention heads are not divisible by the %d key/value heads", path, h->heads, h->kv_heads);
        rc = -1;
    }
    mt_json_free(j);
    return rc;
}

// ---- the config's flags ---------------------------------------------------------------

int mt_hf_apply_config(mt_config *c, const mt_hf_config *h, const char *dir, char *err, size_t errlen) {
    int llama = h->arch == MT_HF_LLAMA;
    struct { const char *flag; int *field; int value; } ints[] = {
        {"--num-layers", &c->num_layers, h->layers},
        {"--hidden-size", &c->hidden_size, h->hidden},
        {"--num-attention-heads", &c->num_heads, h->heads},
        {"--max-position-embeddings", &c->max_position_embeddings, h->max_pos},
        {"--vocab-size", &c->vocab_size, h->vocab},
        {"--ffn-hidden-size", &c->ffn_hidden_size, h->ffn},
        {"--normalization", (int *)&c->normalization, llama ? MT_NORM_RMSNORM : MT_NORM_LAYERNORM},
        {"--position-embedding-type", (int *)&c->position_embedding, llama ? MT_POS_ROPE : MT_POS_LEARNED},
        {"--swiglu", &c->swiglu, llama},
        {"--untie-embeddings-and-output-weights", &c->untie_embeddings, !h->tied},
        {"--disable-bias-linear", &c->disable_bias_linear, !h->bias},
        {"--group-query-attention", &c->group_query_attention, h->kv_heads != h->heads},
        {"--num-query-groups", &c->num_query_groups, h->kv_heads != h->heads ? h->kv_heads : 0},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (mt_config_was_set(c, ints[i].flag) && *ints[i].field != ints[i].value) {
            snprintf(err, errlen, "%s (%d) disagrees with --init-from %s, whose config.json says %d", ints[i].flag,
                     *ints[i].field, dir, ints[i].value);
            return -1;
        }
        *ints[i].field = ints[i].value;
    }
    struct { const char *flag; double *field; double value; } dbls[] = {
        {"--norm-epsilon", &c->norm_epsilon, h->norm_eps},
        {"--rotary-base", &c->rotary_base, h->rope_theta},
        {"--rotary-percent", &c->rotary_percent, h->rotary_percent},
    };
    for (size_t i = 0; i < sizeof dbls / sizeof dbls[0]; i++) {
        if (mt_config_was_set(c, dbls[i].flag) && *dbls[i].field != dbls[i].value) {
            snprintf(err, errlen, "%s (%g) disagrees with --init-from %s, whose config.json says %g", dbls[i].flag,
                     *dbls[i].field, dir, dbls[i].value);
            return -1;
        }
        *dbls[i].field = dbls[i].value;
    }
    if (c->seq_length > c->max_position_embeddings) {
        snprintf(err, errlen, "--seq-length %d exceeds the %d positions of --init-from %s", c->seq_length,
                 c->max_position_embeddings, dir);
        return -1;
    }
    return 0;
}

int mt_hf_arch_of(const mt_config *c, char *err, size_t errlen) {
    int ln = c->normalization == MT_NORM_LAYERNORM, learned = c->position_embedding == MT_POS_LEARNED;
    if (ln && learned && !c->swiglu && !c->group_query_attention && !c->disable_bias_linear) return MT_HF_GPT2;
    if (!ln && !learned && c->swiglu && c->rotary_percent == 1) return MT_HF_LLAMA;
    snprintf(err, errlen, "no Hugging Face architecture matches this model: GPT2LMHeadModel is LayerNorm, learned "
                          "positions, GELU, biases, no GQA; LlamaForCausalLM is RMSNorm, RoPE (--rotary-percent 1), SwiGLU");
    return -1;
}

// ---- tensor names ------------------------------------------------------------------

// Where tensor p's rows live in architecture a: up to three pieces, each a
// Hugging Face tensor of `rows` rows (the row blocks of a Llama q/k/v or
// gate/up; GPT-2 stores its fused tensors whole), transposed for GPT-2's
// Conv1D. Returns the piece count, 0 when a has no such tensor.
typedef struct { char name[MT_ST_MAX_NAME]; int64_t rows; } hf_piece;

static int pieces_of(const mt_param *p, mt_hf_arch a, int64_t vocab, hf_piece *out, int *transposed) {
    const mt_param_def *d = p->def;
    const char *names = a == MT_HF_GPT2 ? d->gpt2 : d->llama;
    *transposed = a == MT_HF_GPT2 && d->gpt2_transposed;
    if (!names[0]) return 0;
    // The vocabulary's padding rows are not in the file.
    int64_t vrows = d->rows[0] == MT_DIM_VP ? vocab : -1;
    int n = 0;
    for (const char *q = names; n < 3; n++) {
        const char *e = strchr(q, '|');
        int len = e ? (int)(e - q) : (int)strlen(q);
        if (p->layer >= 0)
            snprintf(out[n].name, sizeof out[n].name, "%s%d.%.*s", a == MT_HF_GPT2 ? "transformer.h." : "model.layers.",
                     p->layer, len, q);
        else snprintf(out[n].name, sizeof out[n].name, "%.*s", len, q);
        out[n].rows = vrows >= 0 ? vrows : e || n > 0 ? p->block[n] : p->rows;
        if (!e) { n++; break; }
        q = e + 1;
    }
    return n;
}

// ---- loading -------------------------------------------------------------------------

typedef struct {
    mt_st_file *files[MAX_SHARDS];
    int nfiles;
    mt_json *index;          // weight_map (sharded) or NULL
    char dir[1100];
} hf_files;

static void close_files(hf_files *f) {
    for (int i = 0; i < f->nfiles; i++) mt_st_close(f->files[i]);
    mt_json_free(f->index);
    f->nfiles = 0;
    f->index = NULL;
}

// A shard file name from the index: a plain name inside the directory.
static int safe_name(const char *s) { return s[0] && s[0] != '.' && !strchr(s, '/') && strlen(s) < 256; }

static int open_files(hf_files *f, const char *dir, char *err, size_t errlen) {
    char path[1400];
    snprintf(f->dir, sizeof f->dir, "%s", dir);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (!(f->files[0] = mt_st_open(path, err, errlen))) return -1;
        f->nfiles = 1;
        return 0;
    }
    if (!(f->index = read_json(path, INDEX_MAX, err, errlen))) return -1;
    const mt_json *map = mt_json_get(f->index, "weight_map");
    if (!map || map->type != MT_JSON_OBJECT) { snprintf(err, errlen, "%s: lacks a \"weight_map\" object", path); return -1; }
    // Open each shard once, in the order the map first names it.
    for (int i = 0; i < map->n; i++) {
        const mt_json *v = &map->items[i];
        if (v->type != MT_JSON_STRING || !safe_name(v->string)) {
            snprintf(err, errlen, "%s: \"%s\" maps to an invalid file name", path, map->keys[i]);
            return -1;
        }
        int seen = 0;
        for (int k = 0; k < i && !seen; k++) seen = !strcmp(map->items[k].string, v->string);
        if (seen) continue;
        if (f->nfiles == MAX_SHARDS) { snprintf(err, errlen, "%s: more than %d shard files", path, MAX_SHARDS); return -1; }
        char sp[1400];
        snprintf(sp, sizeof sp, "%s/%s", dir, v->string);
        if (!(f->files[f->nfiles] = mt_st_open(sp, err, errlen))) return -1;
        f->nfiles++;
    }
    return 0;
}

// The tensor `name` (GPT-2 files may lack the "transformer." prefix).
static const mt_st_tensor *find(const hf_files *f, const char *name) {
    for (int pass = 0; pass < 2; pass++) {
        const char *nm = name;
        if (pass == 1) {
            if (strncmp(name, "transformer.", 12)) break;
            nm = name + 12;
        }
        for (int i = 0; i < f->nfiles; i++) {
            const mt_st_tensor *t = mt_st_find(f->files[i], nm);
            if (t) return t;
        }
    }
    return NULL;
}

typedef struct { const mt_st_tensor *t; int64_t rows; } found_piece;

// Checks the pieces of tensor p: present, the shape Hugging Face uses, a
// float dtype, finite values.
static int check_pieces(const hf_files *f, const mt_param *p, mt_hf_arch a, int64_t vocab, found_piece *fp, int *np,
                        int *transposed, char *err, size_t errlen) {
    hf_piece pc[3];
    *np = pieces_of(p, a, vocab, pc, transposed);
    if (!*np) { snprintf(err, errlen, "%s: the model needs %s, which %s has no tensor for", f->dir, p->name,
                         a == MT_HF_GPT2 ? "GPT2LMHeadModel" : "LlamaForCausalLM"); return -1; }
    for (int i = 0; i < *np; i++) {
        const mt_st_tensor *t = find(f, pc[i].name);
        if (!t) { snprintf(err, errlen, "%s: tensor %s is missing", f->dir, pc[i].name); return -1; }
        int vec = p->ndim == 1;
        int64_t want0 = vec ? pc[i].rows : *transposed ? p->cols : pc[i].rows, want1 = *transposed ? pc[i].rows : p->cols;
        int ok = vec ? t->ndim == 1 && t->shape[0] == want0 : t->ndim == 2 && t->shape[0] == want0 && t->shape[1] == want1;
        if (!ok) {
            char got[64] = "";
            for (int k = 0, o = 0; k < t->ndim; k++) o += snprintf(got + o, sizeof got - (size_t)o, k ? " x %lld" : "%lld", (long long)t->shape[k]);
            if (vec) snprintf(err, errlen, "%s: tensor %s has shape (%s), want (%lld)", f->dir, pc[i].name, got, (long long)want0);
            else snprintf(err, errlen, "%s: tensor %s has shape (%s), want (%lld x %lld)", f->dir, pc[i].name, got,
                          (long long)want0, (long long)want1);
            return -1;
        }
        if (t->dtype != MT_ST_F32 && t->dtype != MT_ST_F64 && t->dtype != MT_ST_BF16 && t->dtype != MT_ST_F16) {
            snprintf(err, errlen, "%s: tensor %s is %s; weights must be F32, F64, BF16 or F16", f->dir, pc[i].name, mt_st_dtype_name(t->dtype));
            return -1;
        }
        size_t n = t->nbytes / mt_st_dtype_size(t->dtype);
        for (size_t e = 0; e < n; e++)
            if (!isfinite(mt_st_float_at(t, e))) {
                snprintf(err, errlen, "%s: tensor %s holds a non-finite value at element %zu", f->dir, pc[i].name, e);
                return -1;
            }
        fp[i] = (found_piece){t, pc[i].rows};
    }
    return 0;
}

// The full (rows, cols) tensor from its pieces; rows past the file's
// (vocabulary padding) are zero.
static void assemble(real *full, const mt_param *p, const found_piece *fp, int np, int transposed) {
    memset(full, 0, sizeof(real) * (size_t)(p->rows * p->cols));
    int64_t r0 = 0;
    for (int i = 0; i < np; i++) {
        int64_t pr = fp[i].rows;
        for (int64_t r = 0; r < pr; r++)
            for (int64_t c = 0; c < p->cols; c++)
                full[(r0 + r) * p->cols + c] = (real)mt_st_float_at(fp[i].t, (size_t)(transposed ? c * pr + r : r * p->cols + c));
        r0 += pr;
    }
}

int mt_hf_load(mt_model *m, const char *dir, char *err, size_t errlen) {
    const mt_config *c = m->cfg;
    int rank = m->par->world_rank, n, rc = 0;
    mt_param *all = mt_params_global(c, &n);
    hf_files f = {0};
    mt_hf_arch a = (mt_hf_arch)mt_hf_arch_of(c, err, errlen);
    if (rank == 0) {
        rc = open_files(&f, dir, err, errlen);
        for (int i = 0; i < n && !rc; i++) {
            found_piece fp[3];
            int np, tr;
            rc = check_pieces(&f, &all[i], a, c->vocab_size, fp, &np, &tr, err, errlen);
        }
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Bcast(err, (int)errlen, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (!rc) {
        size_t maxn = 0;
        for (int i = 0; i < n; i++) maxn = MT_MAX(maxn, (size_t)(all[i].rows * all[i].cols));
        real *full = mt_malloc(maxn * sizeof(real));
        for (int i = 0; i < n; i++) {
            if (rank == 0) {
                found_piece fp[3];
                int np, tr;
                check_pieces(&f, &all[i], a, c->vocab_size, fp, &np, &tr, err, errlen);
                assemble(full, &all[i], fp, np, tr);
            }
            mt_shard_scatter(m, MT_ARENA_PARAMS, all[i].name, all[i].rows, all[i].cols, full);
        }
        free(full);
    }
    close_files(&f);
    free(all);
    return rc;
}

// ---- saving -----------------------------------------------------------------------------

static int write_config(const char *dir, const mt_config *c, mt_hf_arch a, char *err, size_t errlen) {
    char path[1200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    mt_outfile o;
    if (mt_outfile_open(&o, path, err, errlen)) return -1;
    FILE *fp = o.fp;
    if (a == MT_HF_GPT2)
        fprintf(fp, "{\n  \"architectures\": [\"GPT2LMHeadModel\"],\n  \"model_type\": \"gpt2\",\n  \"vocab_size\": %d,\n"
                    "  \"n_positions\": %d,\n  \"n_ctx\": %d,\n  \"n_embd\": %d,\n  \"n_layer\": %d,\n  \"n_head\": %d,\n"
                    "  \"n_inner\": %d,\n  \"activation_function\": \"gelu_new\",\n  \"layer_norm_epsilon\": %.17g,\n"
                    "  \"initializer_range\": %.17g,\n  \"resid_pdrop\": %.17g,\n  \"embd_pdrop\": %.17g,\n  \"attn_pdrop\": %.17g,\n"
                    "  \"tie_word_embeddings\": %s,\n  \"torch_dtype\": \"float32\"\n}\n",
                c->vocab_size, c->max_position_embeddings, c->max_position_embeddings, c->hidden_size, c->num_layers,
                c->num_heads, c->ffn_hidden_size, c->norm_epsilon, c->init_method_std, c->hidden_dropout, c->hidden_dropout,
                c->attention_dropout, c->untie_embeddings ? "false" : "true");
    else
        fprintf(fp, "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n  \"vocab_size\": %d,\n"
                    "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n"
                    "  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n"
                    "  \"max_position_embeddings\": %d,\n  \"hidden_act\": \"silu\",\n  \"rms_norm_eps\": %.17g,\n"
                    "  \"rope_theta\": %.17g,\n  \"rope_scaling\": null,\n  \"attention_bias\": %s,\n  \"mlp_bias\": %s,\n"
                    "  \"attention_dropout\": %.17g,\n  \"initializer_range\": %.17g,\n  \"tie_word_embeddings\": %s,\n"
                    "  \"torch_dtype\": \"float32\"\n}\n",
                c->vocab_size, c->hidden_size, c->ffn_hidden_size, c->num_layers, c->num_heads, c->num_query_groups,
                c->hidden_size / c->num_heads, c->max_position_embeddings, c->norm_epsilon, c->rotary_base,
                c->disable_bias_linear ? "false" : "true", c->disable_bias_linear ? "false" : "true", c->attention_dropout,
                c->init_method_std, c->untie_embeddings ? "false" : "true");
    return mt_outfile_commit(&o, err, errlen);
}

int mt_hf_save(const mt_model *m, const char *dir, char *err, size_t errlen) {
    const mt_config *c = m->cfg;
    int rank = m->par->world_rank, n, rc = 0;
    mt_param *all = mt_params_global(c, &n);
    mt_hf_arch a = (mt_hf_arch)mt_hf_arch_of(c, err, errlen);
    mt_st_tensor *t = mt_calloc((size_t)n * 3, sizeof *t);
    float **data = mt_calloc((size_t)n * 3, sizeof(float *));
    int nt = 0;
    size_t maxn = 0;
    for (int i = 0; i < n; i++) maxn = MT_MAX(maxn, (size_t)(all[i].rows * all[i].cols));
    real *full = rank == 0 ? mt_malloc(maxn * sizeof(real)) : NULL;
    for (int i = 0; i < n; i++) {
        mt_shard_gather(m, MT_ARENA_PARAMS, all[i].name, all[i].rows, all[i].cols, full);
        if (rank != 0 || rc) continue;
        long long bad = mt_first_nonfinite(full, (size_t)(all[i].rows * all[i].cols));
        if (bad >= 0) {
            snprintf(err, errlen, "%s: tensor %s holds a non-finite value at element %lld; nothing written", dir, all[i].name, bad);
            rc = -1;
            continue;
        }
        hf_piece pc[3];
        int tr, np = pieces_of(&all[i], a, c->vocab_size, pc, &tr);
        int64_t r0 = 0, cols = all[i].cols;
        for (int k = 0; k < np; k++, nt++) {
            int64_t pr = pc[k].rows;
            float *d = data[nt] = mt_malloc(sizeof(float) * (size_t)(pr * cols));
            for (int64_t r = 0; r < pr; r++)
                for (int64_t col = 0; col < cols; col++) d[tr ? col * pr + r : r * cols + col] = (float)full[(r0 + r) * cols + col];
            mt_st_tensor *o = &t[nt];
            memcpy(o->name, pc[k].name, sizeof o->name);  // both MT_ST_MAX_NAME bytes, NUL-terminated
            o->dtype = MT_ST_F32;
            o->ndim = all[i].ndim;
            o->shape[0] = all[i].ndim == 1 ? pr : tr ? cols : pr;
            o->shape[1] = tr ? pr : cols;
            o->nbytes = sizeof(float) * (size_t)(pr * cols);
            o->data = d;
            r0 += pr;
        }
    }
    if (rank == 0) {
        char path[1200];
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (!rc && mkdir(dir, 0755) && errno != EEXIST) { snprintf(err, errlen, "%s: %s", dir, strerror(errno)); rc = -1; }
        if (!rc) rc = mt_st_write(path, t, nt, NULL, err, errlen);
        if (!rc) rc = write_config(dir, c, a, err, errlen);
    }
    for (int k = 0; k < nt; k++) free(data[k]);
    free(data);
    free(t);
    free(full);
    free(all);
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Bcast(err, (int)errlen, MPI_CHAR, 0, MPI_COMM_WORLD);
    return rc;
}
