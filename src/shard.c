// shard.c: gather and scatter of whole tensors, llm.c model files, dumps.
// Plain MPI on the world communicator: these move files' contents, not
// activations or gradients, so they are not counted in --log-comm.
#include "shard.h"
#include "input.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outfile.h"
#include "safetensors.h"

#ifdef MT_FP64
#define MT_MPI_REAL MPI_DOUBLE
#else
#define MT_MPI_REAL MPI_FLOAT
#endif

// An arena as [lo, hi) of arena offsets this rank holds, stored from `base`.
typedef struct { real *mem; size_t lo, hi, base; int dp_copies; } arena_view;

static arena_view view_of(const mt_model *m, mt_arena a) {
    arena_view v = {NULL, 0, m->nelem, 0, 1};
    if (a == MT_ARENA_PARAMS) v.mem = m->param_mem;
    // --bf16: a tensor file holds the fp32 main weights, as Megatron's
    // checkpoints do; they live with the optimizer's shard.
    if (a == MT_ARENA_PARAMS && m->main_mem) a = MT_ARENA_MAIN;
    if (a == MT_ARENA_MAIN) {
        v.mem = m->main_mem;
        v.lo = m->shard0;
        v.hi = MT_MIN(m->shard0 + m->shard_n, m->nelem);
        v.base = m->shard0;
        v.dp_copies = !m->cfg->use_distributed_optimizer;
    }
    if (a == MT_ARENA_GRADS) {
        v.mem = m->grad_mem;
        // After a distributed optimizer's reduce-scatter only the shard holds
        // summed gradients; each DP rank contributes its own part.
        if (m->cfg->use_distributed_optimizer) {
            v.lo = m->shard0;
            v.hi = MT_MIN(m->shard0 + m->shard_n, m->nelem);
            v.dp_copies = 0;
        }
    }
    if (a == MT_ARENA_ADAM_M || a == MT_ARENA_ADAM_V) {
        v.mem = a == MT_ARENA_ADAM_M ? m->m_mem : m->v_mem;
        v.lo = m->shard0;
        v.hi = MT_MIN(m->shard0 + m->shard_n, m->nelem);
        v.base = m->shard0;
        v.dp_copies = !m->cfg->use_distributed_optimizer;  // else each DP rank holds its own part
    }
    return v;
}

// Copies between local shard elements inside the view and the full tensor
// of `rows` rows (fewer than the shard's global rows for a vocabulary padded
// for TP: files stop at the TP 1 padding, and the rows past it stay put).
static void place(const mt_param *p, int tp_rank, int64_t rows, real *full, const arena_view *v, int to_full) {
    for (int64_t i = 0; i < p->lrows; i++)
        for (int64_t j = 0; j < p->lcols; j++) {
            size_t off = p->off + (size_t)(i * p->lcols + j);
            if (off < v->lo || off >= v->hi) continue;
            int64_t gi, gj;
            mt_param_global_index(p, tp_rank, i, j, &gi, &gj);
            if (gi >= rows) continue;
            real *f = &full[gi * p->cols + gj], *l = &v->mem[off - v->base];
            if (to_full) *f = *l; else *l = *f;
        }
}

static void reduce_to_root(real *buf, size_t n, int rank) {
    // Each element is written by exactly one rank and zero elsewhere, so
    // the SUM is exact.
    for (size_t o = 0; o < n; o += (size_t)1 << 28) {
        int k = (int)MT_MIN(n - o, (size_t)1 << 28);
        MPI_Reduce(rank == 0 ? MPI_IN_PLACE : buf + o, buf + o, k, MT_MPI_REAL, MPI_SUM, 0, MPI_COMM_WORLD);
    }
}

void mt_shard_gather(const mt_model *m, mt_arena arena, const char *name, int64_t rows, int64_t cols, real *full) {
    size_t n = (size_t)(rows * cols);
    int rank = m->par->world_rank;
    real *buf = rank == 0 ? full : mt_calloc(n, sizeof(real));
    if (rank == 0) memset(full, 0, n * sizeof(real));
    const mt_param *p = mt_model_find(m, name);
    arena_view v = view_of(m, arena);
    if (p && mt_param_is_writer(m, p, v.dp_copies)) place(p, m->par->tp_rank, rows, buf, &v, 1);
    reduce_to_root(buf, n, rank);
    if (rank != 0) free(buf);
}

static void bcast(real *buf, size_t n) {
    for (size_t o = 0; o < n; o += (size_t)1 << 28)
        MPI_Bcast(buf + o, (int)MT_MIN(n - o, (size_t)1 << 28), MT_MPI_REAL, 0, MPI_COMM_WORLD);
}

void mt_shard_scatter(mt_model *m, mt_arena arena, const char *name, int64_t rows, int64_t cols, real *full) {
    bcast(full, (size_t)(rows * cols));
    const mt_param *p = mt_model_find(m, name);
    arena_view v = view_of(m, arena);
    if (p) place(p, m->par->tp_rank, rows, full, &v, 0);
}

// ---- llm.c model files ----------------------------------------------------

// Calls fn(name, rows, cols, file_rows) for each tensor of llm.c's file in
// its order: the first stage's tensors, then each layer tensor kind for all
// layers in turn, then the last stage's (params.h's row order). file_rows
// differs from rows for the vocabulary of a file padded differently.
typedef int (*llmc_visit)(void *ctx, const char *name, int64_t rows, int64_t cols, int64_t file_rows);

static int llmc_visit_one(const mt_config *c, const mt_param_def *d, int layer, int64_t file_vp, llmc_visit fn, void *ctx) {
    if (!d->llmc || !mt_param_present(c, d)) return 0;
    char nm[64];
    if (layer >= 0) snprintf(nm, sizeof nm, "h.%d.%s", layer, d->name);
    else snprintf(nm, sizeof nm, "%s", d->name);
    int64_t rows = 0;
    for (int b = 0; b < 3; b++) rows += mt_param_dim(c, d->rows[b]);
    int64_t file_rows = d->rows[0] == MT_DIM_VP && d->rows[1] == MT_DIM_NONE ? file_vp : rows;
    return fn(ctx, nm, rows, mt_param_dim(c, d->cols), file_rows);
}

static int llmc_walk(const mt_config *c, int64_t file_vp, llmc_visit fn, void *ctx) {
    for (int i = 0; i < MT_TP_N; i++)
        if (mt_top_param_defs[i].where != MT_AT_LAST && llmc_visit_one(c, &mt_top_param_defs[i], -1, file_vp, fn, ctx)) return -1;
    for (int k = 0; k < MT_LP_N; k++)
        for (int l = 0; l < c->num_layers; l++)
            if (llmc_visit_one(c, &mt_layer_param_defs[k], l, file_vp, fn, ctx)) return -1;
    for (int i = 0; i < MT_TP_N; i++)
        if (mt_top_param_defs[i].where == MT_AT_LAST && llmc_visit_one(c, &mt_top_param_defs[i], -1, file_vp, fn, ctx)) return -1;
    return 0;
}

// The config an llm.c header describes (its shape; nothing else is set).
static mt_config llmc_config(const mt_llmc_header *h) {
    mt_config c;
    memset(&c, 0, sizeof c);
    c.num_layers = h->layers;
    c.hidden_size = h->channels;
    c.num_heads = h->heads;
    c.vocab_size = h->vocab;
    c.padded_vocab = h->padded_vocab;
    c.max_position_embeddings = h->max_seq;
    return c;
}

// Element counts over a walk: the total in the file and the largest tensor.
typedef struct { size_t total, largest; } llmc_sizes;

static int count_one(void *vctx, const char *name, int64_t rows, int64_t cols, int64_t file_rows) {
    llmc_sizes *z = vctx;
    (void)name;
    z->total += (size_t)(file_rows * cols);
    z->largest = MT_MAX(z->largest, (size_t)(MT_MAX(rows, file_rows) * cols));
    return 0;
}

static llmc_sizes llmc_count(const mt_config *c, int64_t file_vp) {
    llmc_sizes z = {0, 0};
    llmc_walk(c, file_vp, count_one, &z);
    return z;
}

int mt_llmc_supports(const mt_config *c, char *err, size_t errlen) {
    if (c->normalization == MT_NORM_LAYERNORM && c->position_embedding == MT_POS_LEARNED && !c->swiglu &&
        !c->group_query_attention && !c->untie_embeddings && !c->disable_bias_linear &&
        (c->ffn_hidden_size == 0 || c->ffn_hidden_size == 4 * c->hidden_size))
        return 0;
    snprintf(err, errlen, "llm.c's model file holds GPT-2 only (LayerNorm, learned positions, GELU MLP of 4h, biases, "
                          "tied embeddings, no GQA); use --export-hf or --save for this model");
    return -1;
}

// Opens path as an llm.c model file and checks its header, leaving fp at
// the first tensor. Both the header read and the load go through here, each
// from the one descriptor it checked: reopening by name between the check
// and the read would load whatever the path names by then (a FIFO: a hang).
static FILE *llmc_open(const char *path, mt_llmc_header *h, char *err, size_t errlen) {
    struct stat st;
    char why[1400];
    // Non-blocking, regular files only (input.h): a FIFO is refused.
    int fd = mt_input_open(path, "", &st, why, sizeof why);
    if (fd < 0) {
        int e = errno;
        if (e == EISDIR) snprintf(err, errlen, "%s: is a directory, expected an llm.c model file", path);
        else if (e == ENODEV) snprintf(err, errlen, "%s: not a regular file, expected an llm.c model file", path);
        else snprintf(err, errlen, "%s: cannot open model file (%s)", path, strerror(e));
        return NULL;
    }
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        int e = errno;
        close(fd);
        snprintf(err, errlen, "%s: cannot open model file (%s)", path, strerror(e));
        return NULL;
    }
    int32_t hd[256];
    size_t got = fread(hd, 4, 256, fp);
    char bad[200] = "";
    if (got != 256) snprintf(bad, sizeof bad, "truncated header (%zu of 1024 bytes)", got * 4);
    else if (hd[0] == 20240520) snprintf(bad, sizeof bad, "is an llm.c token file (magic 20240520; --data-path takes it), not a model file");
    else if (hd[0] != MT_LLMC_MAGIC) snprintf(bad, sizeof bad, "bad magic %d (want %d: llm.c model file)", hd[0], MT_LLMC_MAGIC);
    else if (hd[1] != 3) snprintf(bad, sizeof bad, "unsupported version %d (need 3: fp32 weights)", hd[1]);
    if (bad[0]) {
        fclose(fp);
        snprintf(err, errlen, "%s: %s", path, bad);
        return NULL;
    }
    *h = (mt_llmc_header){hd[2], hd[3], hd[4], hd[5], hd[6], hd[7]};
    if (h->max_seq < 1 || h->max_seq > 65535 || h->vocab < 2 || h->layers < 1 || h->heads < 1 || h->channels < 1 ||
        h->padded_vocab < h->vocab || h->vocab > 1 << 24 || h->padded_vocab - h->vocab > 1 << 20 || h->channels % h->heads || h->channels > 1 << 16 || h->layers > 1 << 12) {
        fclose(fp);
        snprintf(err, errlen, "%s: implausible header (maxT %d, vocab %d, layers %d, heads %d, channels %d, padded vocab %d)",
                 path, h->max_seq, h->vocab, h->layers, h->heads, h->channels, h->padded_vocab);
        return NULL;
    }
    mt_config hc = llmc_config(h);
    size_t want = 1024 + 4 * llmc_count(&hc, h->padded_vocab).total;
    if ((size_t)st.st_size != want) {
        fclose(fp);
        snprintf(err, errlen, "%s: header implies %zu bytes but the file has %lld", path, want, (long long)st.st_size);
        return NULL;
    }
    return fp;
}

int mt_llmc_read_header(const char *path, mt_llmc_header *h, char *err, size_t errlen) {
    FILE *fp = llmc_open(path, h, err, errlen);
    if (!fp) return -1;
    fclose(fp);
    return 0;
}

typedef struct {
    mt_model *m;
    FILE *fp;        // rank 0
    real *full;
    float *tmp;
    int bad;         // a non-finite weight was read
    char bad_name[64];
} load_ctx;

static int load_one(void *vctx, const char *name, int64_t rows, int64_t cols, int64_t file_rows) {
    load_ctx *x = vctx;
    size_t n = (size_t)(rows * cols), nf = (size_t)(file_rows * cols);
    if (x->m->par->world_rank == 0) {
        // fp32 build: the file's floats go straight into the broadcast buffer
        // (no second copy of the largest tensor at peak memory).
        if (!x->tmp) x->tmp = (float *)x->full;
        if (fread(x->tmp, 4, nf, x->fp) != nf) x->bad = 2;
        // Rows past the file's (padding rows of a differently padded vocab)
        // are zero; they never reach the loss.
        if ((void *)x->tmp != (void *)x->full)
            for (size_t i = 0; i < n; i++) x->full[i] = i < nf ? (real)x->tmp[i] : 0;
        else
            for (size_t i = nf; i < n; i++) x->full[i] = 0;
        for (size_t i = 0; i < MT_MIN(n, nf); i++)
            if (!isfinite(x->tmp[i]) && !x->bad) { x->bad = 1; snprintf(x->bad_name, sizeof x->bad_name, "%s", name); }
    }
    mt_shard_scatter(x->m, MT_ARENA_PARAMS, name, rows, cols, x->full);
    return 0;
}

int mt_llmc_load(mt_model *m, const char *path, char *err, size_t errlen) {
    const mt_config *c = m->cfg;
    mt_llmc_header h = {0};
    int rank = m->par->world_rank;
    load_ctx x = {m, NULL, NULL, NULL, 0, ""};
    // The configuration came from this file's header (main.c's
    // apply_init_header); a file that no longer says the same was replaced
    // since, and is refused rather than read with the old shapes.
    int bad = 0;
    if (rank == 0) {
        x.fp = llmc_open(path, &h, err, errlen);
        if (!x.fp) bad = 1;
        else if (h.layers != c->num_layers || h.channels != c->hidden_size || h.heads != c->num_heads ||
                 h.max_seq != c->max_position_embeddings || h.vocab != c->vocab_size) {
            snprintf(err, errlen, "%s: changed since its header was read (now layers %d, channels %d, heads %d, maxT %d, vocab %d)",
                     path, h.layers, h.channels, h.heads, h.max_seq, h.vocab);
            fclose(x.fp);
            x.fp = NULL;
            bad = 1;
        }
    }
    MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (bad) {
        MPI_Bcast(err, (int)errlen, MPI_CHAR, 0, MPI_COMM_WORLD);
        return -1;
    }
    MPI_Bcast(&h, sizeof h, MPI_BYTE, 0, MPI_COMM_WORLD);
    size_t maxn = llmc_count(c, h.padded_vocab).largest;
    x.full = mt_malloc(maxn * sizeof(real));
    x.tmp = rank == 0 && sizeof(real) != sizeof(float) ? mt_malloc(maxn * sizeof(float)) : NULL;
    llmc_walk(c, h.padded_vocab, load_one, &x);
    if (x.fp) fclose(x.fp);
    if ((void *)x.tmp != (void *)x.full) free(x.tmp);
    free(x.full);
    bad = x.bad;
    MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Bcast(x.bad_name, sizeof x.bad_name, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (bad == 1) { snprintf(err, errlen, "%s: non-finite weight in tensor %s", path, x.bad_name); return -1; }
    if (bad == 2) { snprintf(err, errlen, "%s: read error", path); return -1; }
    return 0;
}

typedef struct {
    const mt_model *m;
    mt_outfile *out;  // rank 0
    real *full;
    float *tmp;
    int bad;          // 1 write failed, 2 open failed, 3 a non-finite weight
    char bad_name[64];
    long long bad_at;
} save_ctx;

static int save_one(void *vctx, const char *name, int64_t rows, int64_t cols, int64_t file_rows) {
    save_ctx *x = vctx;
    mt_shard_gather(x->m, MT_ARENA_PARAMS, name, rows, cols, x->full);
    if (x->m->par->world_rank == 0 && !x->bad) {
        size_t n = (size_t)(rows * cols);
        for (size_t i = 0; i < n; i++) x->tmp[i] = (float)x->full[i];
        // Checked after narrowing: an fp64 weight past FLT_MAX is as bad.
        for (size_t i = 0; i < n && !x->bad; i++)
            if (!isfinite(x->tmp[i])) {
                x->bad = 3, x->bad_at = (long long)i;
                snprintf(x->bad_name, sizeof x->bad_name, "%s", name);
            }
        if (!x->bad && mt_outfile_write(x->out, x->tmp, 4 * n)) x->bad = 1;
    }
    return 0;
}

int mt_llmc_save(const mt_model *m, const char *path, char *err, size_t errlen) {
    // The file holds the TP 1 padding, as llm.c (TP 1) sizes it.
    mt_config fc = *m->cfg;
    if (fc.file_vocab > 0) fc.padded_vocab = fc.file_vocab;
    const mt_config *c = &fc;
    int rank = m->par->world_rank;
    mt_outfile out;
    save_ctx x = {m, &out, NULL, NULL, 0, "", 0};
    if (rank == 0 && mt_outfile_open(&out, path, err, errlen)) x.bad = 2;
    if (rank == 0 && !x.bad) {
        int32_t hd[256] = {MT_LLMC_MAGIC, 3, c->max_position_embeddings, c->vocab_size, c->num_layers,
                           c->num_heads, c->hidden_size, c->padded_vocab};
        if (mt_outfile_write(&out, hd, sizeof hd)) x.bad = 1;
    }
    size_t maxn = llmc_count(c, c->padded_vocab).largest;
    x.full = mt_malloc(maxn * sizeof(real));
    x.tmp = rank == 0 ? mt_malloc(maxn * sizeof(float)) : NULL;
    llmc_walk(c, c->padded_vocab, save_one, &x);
    free(x.full);
    free(x.tmp);
    // A failed write (bad 1) latched in out: commit reports it with its
    // errno and removes the temporary, so the previous file at path stays.
    if (rank == 0 && x.bad == 3) {
        mt_outfile_abort(&out);
        snprintf(err, errlen, "%s: tensor %s holds a value that is not a finite fp32 at element %lld; nothing written",
                 path, x.bad_name, x.bad_at);
    }
    if (rank == 0 && x.bad <= 1 && mt_outfile_commit(&out, err, errlen)) x.bad = 1;
    // Every rank learns the verdict: the failure is then everyone's (exit 1
    // through finalize), not rank 0's alone while the others move on.
    MPI_Bcast(&x.bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Bcast(err, (int)errlen, MPI_CHAR, 0, MPI_COMM_WORLD);
    return x.bad ? -1 : 0;
}

// ---- tensor dumps ---------------------------------------------------------

int mt_dump_tensors(const mt_model *m, const char *path, int grads, char *err, size_t errlen) {
    const mt_config *c = m->cfg;
    int n;
    mt_param *all = mt_params_global(c, &n);
    int nt = grads ? 2 * n : n, rank = m->par->world_rank;
    mt_st_tensor *t = mt_calloc((size_t)nt, sizeof(mt_st_tensor));
    real **bufs = mt_calloc((size_t)nt, sizeof(real *));
    for (int k = 0; k < nt; k++) {
        const mt_param *p = &all[k % n];
        size_t sz = (size_t)(p->rows * p->cols);
        bufs[k] = rank == 0 ? mt_malloc(sz * sizeof(real)) : NULL;
        mt_shard_gather(m, k < n ? MT_ARENA_PARAMS : MT_ARENA_GRADS, p->name, p->rows, p->cols, bufs[k]);
        snprintf(t[k].name, sizeof t[k].name, k < n ? "%s" : "%s.grad", p->name);
        t[k].dtype = sizeof(real) == 8 ? MT_ST_F64 : MT_ST_F32;
        t[k].ndim = p->ndim;
        t[k].shape[0] = p->rows;
        t[k].shape[1] = p->cols;
        t[k].nbytes = sz * sizeof(real);
        t[k].data = bufs[k];
    }
    int rc = 0;
    for (int k = 0; rank == 0 && k < n && !rc; k++) {
        long long i = mt_first_nonfinite(bufs[k], t[k].nbytes / sizeof(real));
        if (i >= 0) rc = -1, snprintf(err, errlen, "%s: tensor %s holds a non-finite value at element %lld; nothing written",
                                      path, t[k].name, i);
    }
    if (rank == 0 && !rc) rc = mt_st_write(path, t, nt, NULL, err, errlen);
    for (int k = 0; k < nt; k++) free(bufs[k]);
    free(bufs);
    free(t);
    free(all);
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Bcast(err, (int)errlen, MPI_CHAR, 0, MPI_COMM_WORLD);
    return rc;
}
