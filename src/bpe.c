// bpe.c: byte-level BPE from a Hugging Face tokenizer.json (bpe.h has the
// algorithm). Plain libc allocation with error returns: this file is also
// compiled into tools/prepare_data on its own (tools/get-data.sh).
#include "bpe.h"
#include "input.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

extern const uint32_t mt_unicode_letters[][2], mt_unicode_numbers[][2];
extern const int mt_unicode_letters_n, mt_unicode_numbers_n;

typedef enum { MT_PRE_GPT2, MT_PRE_LLAMA3 } mt_pre_kind;

// Open-addressing hashes: byte strings -> id (the vocabulary), and id
// pairs -> (rank, merged id) (the merges).
typedef struct { uint64_t key; const char *s; size_t len; uint32_t a; int used; } slot;
typedef struct { slot *s; size_t cap; } table;
typedef struct { uint32_t l, r, rank, into; int used; } pslot;
typedef struct { pslot *s; size_t cap; } ptable;

struct mt_bpe {
    mt_pre_kind pre;
    int ignore_merges;
    int nvocab;              // largest id + 1
    char **bytes;            // nvocab: each id's decoded bytes (NULL: no such id)
    size_t *nbytes;
    uint32_t byte_id[256];   // the id of each single byte's symbol
    table vocab;             // byte-level string -> id (slot.a)
    ptable merges;           // (left, right) -> rank, merged id
    int nadded;
    char **added;            // added tokens' text, longest first
    size_t *added_len;
    uint32_t *added_id;
    unsigned char added_first[32];  // bit set: some added token starts with this byte
};

// ---- hashing -----------------------------------------------------------------------

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int table_init(table *t, size_t n) {
    t->cap = 16;
    while (t->cap < 2 * n + 16) t->cap *= 2;
    t->s = calloc(t->cap, sizeof *t->s);
    return t->s ? 0 : -1;
}

// The slot for (key, s) or for a pair: where it is, or the empty one to fill.
static slot *table_find(const table *t, uint64_t key, const char *s, size_t len) {
    for (size_t i = key & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        slot *x = &t->s[i];
        if (!x->used || (x->key == key && x->len == len && (!s || !memcmp(x->s, s, len)))) return x;
    }
}

static int vocab_id(const mt_bpe *t, const char *s, size_t len) {
    const slot *x = table_find(&t->vocab, fnv(s, len), s, len);
    return x->used ? (int)x->a : -1;
}

static pslot *pair_find(const ptable *t, uint32_t l, uint32_t r) {
    uint64_t h = ((uint64_t)l << 32 | r) * 0x9E3779B97F4A7C15ull;
    for (size_t i = (h >> 20) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        pslot *x = &t->s[i];
        if (!x->used || (x->l == l && x->r == r)) return x;
    }
}

// ---- GPT-2's byte alphabet ------------------------------------------------------------

// GPT-2's byte-level alphabet: the printable bytes stand for themselves,
// the other 68 (0-32, 127-160, 173) for 256, 257, ... in byte order
// (GPT-2's bytes_to_unicode).
static int printable(int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255); }

static unsigned byte_cp(int b) {
    if (printable(b)) return (unsigned)b;
    unsigned k = 0;
    for (int x = 0; x < b; x++) k += !printable(x);
    return 256 + k;
}

// The inverse: the byte a code point stands for, or -1 outside the alphabet.
static int cp_byte(long cp) {
    if (cp >= 0 && cp < 256) return printable((int)cp) ? (int)cp : -1;
    long k = cp - 256;  // the k-th unprintable byte
    if (k < 0 || k >= 68) return -1;
    return k < 33 ? (int)k : k < 67 ? (int)(127 + k - 33) : 173;
}

static size_t utf8_put(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 63)); return 2; }
    o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | (cp >> 6 & 63)); o[2] = (char)(0x80 | (cp & 63));
    return 3;
}

// One code point of s at *i (advancing), or -1 where s is not UTF-8.
static long utf8_next(const unsigned char *s, size_t n, size_t *i) {
    unsigned c = s[*i];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!len || *i + (size_t)len > n) return -1;
    unsigned cp = len == 1 ? c : len == 2 ? c & 31 : len == 3 ? c & 15 : c & 7;
    for (int k = 1; k < len; k++) {
        if ((s[*i + (size_t)k] >> 6) != 2) return -1;
        cp = cp << 6 | (s[*i + (size_t)k] & 63);
    }
    static const unsigned min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) return -1;
    *i += (size_t)len;
    return (long)cp;
}

// The bytes a byte-level symbol string stands for; -1 if a code point is
// outside the alphabet.
static long symbol_bytes(const char *s, size_t n, char *out) {
    size_t i = 0, o = 0;
    while (i < n) {
        long cp = utf8_next((const unsigned char *)s, n, &i);
        int b = cp_byte(cp);
        if (b < 0) return -1;
        out[o++] = (char)b;
    }
    return (long)o;
}

// ---- Unicode classes -------------------------------------------------------------------

static int in_ranges(uint32_t c, const uint32_t (*r)[2], int n) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int m = (lo + hi) / 2;
        if (c < r[m][0]) hi = m - 1;
        else if (c > r[m][1]) lo = m + 1;
        else return 1;
    }
    return 0;
}
static int is_l(uint32_t c) { return c < 128 ? (c | 32) - 'a' < 26 : in_ranges(c, mt_unicode_letters, mt_unicode_letters_n); }
static int is_n(uint32_t c) { return c < 128 ? c - '0' < 10 : in_ranges(c, mt_unicode_numbers, mt_unicode_numbers_n); }
// Unicode White_Space (\s of the regex engines).
static int is_s(uint32_t c) {
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
static int is_other(uint32_t c) { return !is_s(c) && !is_l(c) && !is_n(c); }
static int is_crlf(uint32_t c) { return c == '\r' || c == '\n'; }

// ---- pre-tokenizers: the end of the piece that starts at i ------------------------------

static size_t contraction(const uint32_t *c, size_t i, size_t n, int fold) {
    if (c[i] != '\'' || i + 1 >= n) return 0;
    uint32_t a = c[i + 1], b = i + 2 < n ? c[i + 2] : 0;
    if (fold) {
        a = a == 0x17F ? 's' : a < 128 ? a | 32 : a;  // (?i): 'S, and the long s folds to s
        b = b < 128 ? b | 32 : b;
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    return 0;
}

// \s+(?!\S) then \s+: a whitespace run, less its last character when a
// non-space follows and the run is longer than one.
static size_t space_run(const uint32_t *c, size_t i, size_t n) {
    size_t k = i;
    while (k < n && is_s(c[k])) k++;
    return k == n || k - i < 2 ? k : k - 1;
}

static size_t gpt2_piece(const uint32_t *c, size_t i, size_t n) {
    size_t j = contraction(c, i, n, 0);
    if (j) return j;
    j = c[i] == ' ' && i + 1 < n ? i + 1 : i;  // " ?"
    if (is_l(c[j])) { while (j < n && is_l(c[j])) j++; return j; }
    if (is_n(c[j])) { while (j < n && is_n(c[j])) j++; return j; }
    if (is_other(c[j])) { while (j < n && is_other(c[j])) j++; return j; }
    return space_run(c, i, n);
}

static size_t llama3_piece(const uint32_t *c, size_t i, size_t n) {
    size_t j = contraction(c, i, n, 1);
    if (j) return j;
    // [^\r\n\p{L}\p{N}]?\p{L}+
    j = !is_crlf(c[i]) && !is_l(c[i]) && !is_n(c[i]) && i + 1 < n && is_l(c[i + 1]) ? i + 1 : i;
    if (is_l(c[j])) { while (j < n && is_l(c[j])) j++; return j; }
    if (is_n(c[i])) { j = i; while (j < n && j < i + 3 && is_n(c[j])) j++; return j; }  // \p{N}{1,3}
    j = c[i] == ' ' && i + 1 < n ? i + 1 : i;  // " ?[^\s\p{L}\p{N}]+[\r\n]*"
    if (is_other(c[j])) {
        while (j < n && is_other(c[j])) j++;
        while (j < n && is_crlf(c[j])) j++;
        return j;
    }
    // \s*[\r\n]+: up to the run's last CR or LF
    size_t k = i, last = 0;
    while (k < n && is_s(c[k])) last = is_crlf(c[k]) ? k + 1 : last, k++;
    if (last) return last;
    return space_run(c, i, n);
}

// ---- merges ------------------------------------------------------------------------------

// GPT-2's bpe(): while some adjacent pair has a merge, take the lowest
// rank and merge each of its occurrences, left to right. sym holds ids.
static size_t merge_piece(const mt_bpe *t, uint32_t *sym, size_t n) {
    while (n > 1) {
        uint32_t best = UINT32_MAX, l = 0, r = 0, into = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            const pslot *x = pair_find(&t->merges, sym[i], sym[i + 1]);
            if (x->used && x->rank < best) best = x->rank, l = x->l, r = x->r, into = x->into;
        }
        if (best == UINT32_MAX) break;
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            if (i + 1 < n && sym[i] == l && sym[i + 1] == r) sym[o++] = into, i++;
            else sym[o++] = sym[i];
        }
        n = o;
    }
    return n;
}

// ---- loading ------------------------------------------------------------------------------

static char *read_file(const char *path, size_t *len, char *err, size_t errlen) {
    // Non-blocking, regular, bounded (input.h): tokenizer.json files are a
    // few MB; a FIFO or /dev/zero is one line, not a hang or unbounded memory.
    return mt_input_read_small(path, "", (size_t)1 << 30, 0, len, err, errlen);
}

static const char *str_of(const mt_json *o, const char *key) {
    const mt_json *v = mt_json_get(o, key);
    return v && v->type == MT_JSON_STRING ? v->string : NULL;
}

static int flag_of(const mt_json *o, const char *key) {
    const mt_json *v = mt_json_get(o, key);
    return v && v->type == MT_JSON_BOOL && v->number != 0;
}

#define LLAMA3_PATTERN "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

// Which pre-tokenizer the file describes; -1 with err for any other.
static int pre_kind(const mt_json *root, int *kind, char *err, size_t errlen) {
    const mt_json *pre = mt_json_get(root, "pre_tokenizer"), *norm = mt_json_get(root, "normalizer");
    if (norm && norm->type != MT_JSON_NULL)
        return snprintf(err, errlen, "normalizer %s is not supported (byte-level BPE has none)", str_of(norm, "type") ? str_of(norm, "type") : "?"), -1;
    const char *type = pre ? str_of(pre, "type") : NULL;
    if (type && !strcmp(type, "ByteLevel") && !flag_of(pre, "add_prefix_space") &&
        (!mt_json_get(pre, "use_regex") || flag_of(pre, "use_regex"))) {
        *kind = MT_PRE_GPT2;
        return 0;
    }
    const mt_json *seq = pre ? mt_json_get(pre, "pretokenizers") : NULL;
    if (type && !strcmp(type, "Sequence") && seq && seq->type == MT_JSON_ARRAY && seq->n == 2) {
        const mt_json *split = &seq->items[0], *bl = &seq->items[1], *pat = mt_json_get(split, "pattern");
        const char *rx = pat ? str_of(pat, "Regex") : NULL, *beh = str_of(split, "behavior");
        if (str_of(split, "type") && !strcmp(str_of(split, "type"), "Split") && rx && !strcmp(rx, LLAMA3_PATTERN) && beh &&
            !strcmp(beh, "Isolated") && !flag_of(split, "invert") && str_of(bl, "type") && !strcmp(str_of(bl, "type"), "ByteLevel") &&
            !flag_of(bl, "add_prefix_space") && !flag_of(bl, "use_regex")) {
            *kind = MT_PRE_LLAMA3;
            return 0;
        }
    }
    return snprintf(err, errlen, "pre_tokenizer %s is not one this reader knows (GPT-2's ByteLevel, or Llama 3's Split + ByteLevel)",
                    type ? type : "(none)"), -1;
}

// Ids compare as unsigned: an id of 2^31 or more cast to int would be
// negative, pass the bound and index far outside bytes[].
static int set_token(mt_bpe *t, uint32_t id, const char *bytes, size_t n) {
    if (id >= (uint32_t)t->nvocab || t->bytes[id]) return -1;
    t->bytes[id] = malloc(n + 1);
    if (!t->bytes[id]) return -1;
    memcpy(t->bytes[id], bytes, n);
    t->nbytes[id] = n;
    return 0;
}

static int whole_id(const mt_json *v) {
    return v && v->type == MT_JSON_NUMBER && v->number >= 0 && v->number < 1 << 30 && v->number == (double)(uint32_t)v->number;
}

// The table is sized by the largest id, so that id is bounded by what the
// file holds: real tokenizers number their tokens 0..n-1 (GPT-2 50257,
// Llama 3 128256 with the added ones); twice the count leaves room for a
// few gaps, while one id of 2^30 can no longer ask for 16 GiB of tables.
static int id_bound(const mt_json *vocab, const mt_json *added, uint32_t id, const char *what, char *err, size_t errlen) {
    size_t count = (size_t)vocab->n + (added ? (size_t)added->n : 0);
    if (id < 2 * count) return 0;
    return snprintf(err, errlen, "%s has id %u, but the file defines only %zu tokens (model.vocab and added_tokens): ids must "
                    "run from 0 with few gaps", what, id, count), -1;
}

// Vocabulary, added tokens and the byte alphabet.
static int load_vocab(mt_bpe *t, const mt_json *vocab, const mt_json *added, char *err, size_t errlen) {
    t->nvocab = 0;
    char what[64];
    for (int i = 0; i < vocab->n; i++) {
        if (!whole_id(&vocab->items[i]))
            return snprintf(err, errlen, "model.vocab: the id of \"%s\" is not a whole number >= 0", vocab->keys[i]), -1;
        uint32_t id = (uint32_t)vocab->items[i].number;
        snprintf(what, sizeof what, "model.vocab: \"%.30s\"", vocab->keys[i]);
        if (id_bound(vocab, added, id, what, err, errlen)) return -1;
        if ((int)id >= t->nvocab) t->nvocab = (int)id + 1;
    }
    for (int i = 0; added && i < added->n; i++) {
        const mt_json *id = mt_json_get(&added->items[i], "id");
        if (!whole_id(id) || !str_of(&added->items[i], "content"))
            return snprintf(err, errlen, "added_tokens[%d]: needs an id (a whole number >= 0) and a content", i), -1;
        snprintf(what, sizeof what, "added_tokens[%d]", i);
        if (id_bound(vocab, added, (uint32_t)id->number, what, err, errlen)) return -1;
        if ((int)id->number >= t->nvocab) t->nvocab = (int)id->number + 1;
    }
    t->bytes = calloc((size_t)t->nvocab + 1, sizeof *t->bytes);
    t->nbytes = calloc((size_t)t->nvocab + 1, sizeof *t->nbytes);
    if (!t->bytes || !t->nbytes || table_init(&t->vocab, (size_t)vocab->n)) return snprintf(err, errlen, "out of memory"), -1;
    char *buf = malloc(1024);
    for (int i = 0; buf && i < vocab->n; i++) {
        const char *key = vocab->keys[i];
        size_t len = strlen(key);
        uint32_t id = (uint32_t)vocab->items[i].number;
        slot *x = table_find(&t->vocab, fnv(key, len), key, len);
        if (len > 1000 || x->used) { free(buf); return snprintf(err, errlen, "model.vocab: \"%s\" is %s", key, x->used ? "listed twice" : "too long"), -1; }
        *x = (slot){fnv(key, len), key, len, id, 1};
        long nb = symbol_bytes(key, len, buf);
        if (nb < 0) { free(buf); return snprintf(err, errlen, "model.vocab: \"%s\" is not in the byte-level alphabet", key), -1; }
        if (set_token(t, id, buf, (size_t)nb)) { free(buf); return snprintf(err, errlen, "model.vocab: id %u is used twice", id), -1; }
    }
    free(buf);
    t->nadded = added ? added->n : 0;
    t->added = calloc((size_t)t->nadded + 1, sizeof *t->added);
    t->added_len = calloc((size_t)t->nadded + 1, sizeof *t->added_len);
    t->added_id = calloc((size_t)t->nadded + 1, sizeof *t->added_id);
    if (!t->added || !t->added_len || !t->added_id) return snprintf(err, errlen, "out of memory"), -1;
    for (int i = 0; i < t->nadded; i++) {
        const mt_json *c = mt_json_get(&added->items[i], "content");
        uint32_t id = (uint32_t)mt_json_get(&added->items[i], "id")->number;
        t->added[i] = c->string, t->added_len[i] = c->length, t->added_id[i] = id;
        if (!c->length) return snprintf(err, errlen, "added_tokens[%d]: empty content", i), -1;
        // An added token may repeat a vocabulary entry (GPT-2's <|endoftext|>): same id only.
        if (t->bytes[id] && (t->nbytes[id] != c->length || memcmp(t->bytes[id], c->string, c->length)))
            // (A token's bytes are counted, not NUL-terminated.)
            return snprintf(err, errlen, "added_tokens[%d]: id %u is already \"%.*s\" in the vocabulary", i, id,
                            t->nbytes[id] < 40 ? (int)t->nbytes[id] : 40, t->bytes[id]), -1;
        if (!t->bytes[id] && set_token(t, id, c->string, c->length)) return snprintf(err, errlen, "out of memory"), -1;
    }
    for (int i = 0; i < t->nadded; i++) t->added_first[(unsigned char)t->added[i][0] >> 3] |= (unsigned char)(1u << (t->added[i][0] & 7));
    // Longest first, so that the leftmost match is also the longest.
    for (int i = 1; i < t->nadded; i++)
        for (int j = i; j > 0 && t->added_len[j] > t->added_len[j - 1]; j--) {
            char *s = t->added[j]; t->added[j] = t->added[j - 1]; t->added[j - 1] = s;
            size_t l = t->added_len[j]; t->added_len[j] = t->added_len[j - 1]; t->added_len[j - 1] = l;
            uint32_t d = t->added_id[j]; t->added_id[j] = t->added_id[j - 1]; t->added_id[j - 1] = d;
        }
    for (int b = 0; b < 256; b++) {
        char sym[4];
        size_t l = utf8_put(sym, byte_cp(b));
        int id = vocab_id(t, sym, l);
        if (id < 0) return snprintf(err, errlen, "model.vocab lacks the symbol of byte %d (U+%04X): not a byte-level vocabulary", b, byte_cp(b)), -1;
        t->byte_id[b] = (uint32_t)id;
    }
    return 0;
}

static int load_merges(mt_bpe *t, const mt_json *merges, char *err, size_t errlen) {
    t->merges.cap = 16;
    while (t->merges.cap < 2 * (size_t)merges->n + 16) t->merges.cap *= 2;
    t->merges.s = calloc(t->merges.cap, sizeof *t->merges.s);
    if (!t->merges.s) return snprintf(err, errlen, "out of memory"), -1;
    char both[2048];
    for (int i = 0; i < merges->n; i++) {
        const mt_json *m = &merges->items[i];
        const char *a, *b;
        size_t la, lb;
        if (m->type == MT_JSON_STRING) {  // "a b"
            const char *sp = strchr(m->string, ' ');
            if (!sp || strchr(sp + 1, ' ')) return snprintf(err, errlen, "model.merges[%d] \"%s\": not two symbols", i, m->string), -1;
            a = m->string, la = (size_t)(sp - m->string), b = sp + 1, lb = strlen(b);
        } else if (m->type == MT_JSON_ARRAY && m->n == 2 && m->items[0].type == MT_JSON_STRING && m->items[1].type == MT_JSON_STRING) {
            a = m->items[0].string, la = m->items[0].length, b = m->items[1].string, lb = m->items[1].length;
        } else return snprintf(err, errlen, "model.merges[%d]: neither \"a b\" nor [\"a\", \"b\"]", i), -1;
        if (la + lb >= sizeof both) return snprintf(err, errlen, "model.merges[%d]: too long", i), -1;
        memcpy(both, a, la);
        memcpy(both + la, b, lb);
        int ia = vocab_id(t, a, la), ib = vocab_id(t, b, lb), ic = vocab_id(t, both, la + lb);
        if (ia < 0 || ib < 0 || ic < 0)
            return snprintf(err, errlen, "model.merges[%d]: \"%.*s\", \"%.*s\" or their merge is not in model.vocab", i, (int)la, a, (int)lb, b), -1;
        pslot *x = pair_find(&t->merges, (uint32_t)ia, (uint32_t)ib);
        if (!x->used) *x = (pslot){(uint32_t)ia, (uint32_t)ib, (uint32_t)i, (uint32_t)ic, 1};  // a repeated pair keeps its first rank
    }
    return 0;
}

// The tree is kept while the tokenizer lives: vocabulary keys and added
// tokens' text point into it.
typedef struct { mt_bpe t; mt_json *root; } mt_bpe_owner;

void mt_bpe_file(const char *path, char *file, size_t filelen) {
    size_t pl = strlen(path);
    snprintf(file, filelen, pl > 5 && !strcmp(path + pl - 5, ".json") ? "%s" : "%s/tokenizer.json", path);
}

mt_bpe *mt_bpe_load(const char *path, char *err, size_t errlen) {
    char file[4200];
    size_t len;
    mt_bpe_file(path, file, sizeof file);
    char *text = read_file(file, &len, err, errlen);
    if (!text) return NULL;
    mt_bpe_owner *o = calloc(1, sizeof *o);
    if (!o) { free(text); snprintf(err, errlen, "out of memory"); return NULL; }
    char why[900] = "";
    o->root = mt_json_parse(text, len, why, sizeof why);
    int bad = o->root == NULL;
    free(text);
    const mt_json *model = mt_json_get(o->root, "model");
    const mt_json *vocab = mt_json_get(model, "vocab"), *merges = mt_json_get(model, "merges");
    const mt_json *added = mt_json_get(o->root, "added_tokens");
    int kind = 0;
    if (!bad && (!model || !str_of(model, "type") || strcmp(str_of(model, "type"), "BPE")))
        bad = 1, snprintf(why, sizeof why, "model.type is %s, not BPE", model && str_of(model, "type") ? str_of(model, "type") : "missing");
    else if (!bad && (!vocab || vocab->type != MT_JSON_OBJECT || !merges || merges->type != MT_JSON_ARRAY))
        bad = 1, snprintf(why, sizeof why, "model.vocab (an object) and model.merges (an array) are required");
    else if (!bad && (flag_of(model, "byte_fallback") || (str_of(model, "continuing_subword_prefix") && *str_of(model, "continuing_subword_prefix")) ||
                      (str_of(model, "end_of_word_suffix") && *str_of(model, "end_of_word_suffix"))))
        bad = 1, snprintf(why, sizeof why, "model.byte_fallback, continuing_subword_prefix and end_of_word_suffix are not supported");
    else if (!bad && added && added->type != MT_JSON_ARRAY)
        bad = 1, snprintf(why, sizeof why, "added_tokens must be an array");
    if (!bad) bad = pre_kind(o->root, &kind, why, sizeof why) || load_vocab(&o->t, vocab, added, why, sizeof why) ||
                    load_merges(&o->t, merges, why, sizeof why);
    if (bad) {
        // The reasons quote names and tokens from the file: its control
        // characters (a newline in a vocabulary key) would break the one line.
        for (char *c = why; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
        snprintf(err, errlen, "%s: %s", file, why);
        mt_bpe_free(&o->t);
        return NULL;
    }
    o->t.pre = (mt_pre_kind)kind;
    o->t.ignore_merges = flag_of(model, "ignore_merges");
    return &o->t;
}

void mt_bpe_free(mt_bpe *t) {
    if (!t) return;
    mt_bpe_owner *o = (mt_bpe_owner *)t;  // t is the owner's first member
    for (int i = 0; t->bytes && i < t->nvocab; i++) free(t->bytes[i]);
    free(t->bytes); free(t->nbytes); free(t->vocab.s); free(t->merges.s);
    free(t->added); free(t->added_len); free(t->added_id);
    mt_json_free(o->root);
    free(o);
}

int mt_bpe_vocab_size(const mt_bpe *t) { return t->nvocab; }
const char *mt_bpe_kind(const mt_bpe *t) { return t->pre == MT_PRE_GPT2 ? "gpt2" : "llama3"; }

const char *mt_bpe_decode(const mt_bpe *t, uint32_t id, size_t *len) {
    if (id >= (uint32_t)t->nvocab || !t->bytes[id]) return NULL;  // unsigned: see set_token
    *len = t->nbytes[id];
    return t->bytes[id];
}

// ---- encoding ------------------------------------------------------------------------------

typedef struct { uint32_t **ids; size_t *n, *cap; } out_ids;

static int emit(out_ids *o, const uint32_t *v, size_t k) {
    if (*o->n + k > *o->cap) {
        size_t cap = *o->cap ? *o->cap : 1024;
        while (cap < *o->n + k) cap *= 2;
        uint32_t *p = realloc(*o->ids, cap * sizeof *p);
        if (!p) return -1;
        *o->ids = p, *o->cap = cap;
    }
    memcpy(*o->ids + *o->n, v, k * sizeof *v);
    *o->n += k;
    return 0;
}

// One pre-tokenized piece (bytes): whole if ignore_merges finds it in the
// vocabulary, else its byte symbols merged.
static int encode_piece(const mt_bpe *t, const unsigned char *s, size_t n, uint32_t *sym, out_ids *o) {
    if (t->ignore_merges) {
        char buf[4 * 256];
        size_t l = 0;
        for (size_t i = 0; i < n && l + 3 < sizeof buf; i++) l += utf8_put(buf + l, byte_cp(s[i]));
        int id = n <= 256 ? vocab_id(t, buf, l) : -1;
        if (id >= 0) { uint32_t u = (uint32_t)id; return emit(o, &u, 1); }
    }
    for (size_t i = 0; i < n; i++) sym[i] = t->byte_id[s[i]];
    return emit(o, sym, merge_piece(t, sym, n));
}

// Text without added tokens: code points, pieces, merges.
static int encode_plain(const mt_bpe *t, const unsigned char *s, size_t len, size_t base, out_ids *o, char *err, size_t errlen) {
    uint32_t *cp = malloc((len + 1) * sizeof *cp), *sym = malloc((len + 1) * sizeof *sym);
    size_t *at = malloc((len + 1) * sizeof *at), n = 0, i = 0;
    int rc = cp && sym && at ? 0 : -1;
    if (rc) snprintf(err, errlen, "out of memory");
    while (!rc && i < len) {
        at[n] = i;
        long c = utf8_next(s, len, &i);
        if (c < 0) rc = -1, snprintf(err, errlen, "the text is not UTF-8 at byte %zu", base + i);
        else cp[n++] = (uint32_t)c;
    }
    at[n] = len;
    for (size_t k = 0; !rc && k < n;) {
        size_t e = t->pre == MT_PRE_GPT2 ? gpt2_piece(cp, k, n) : llama3_piece(cp, k, n);
        if (encode_piece(t, s + at[k], at[e] - at[k], sym, o)) rc = -1, snprintf(err, errlen, "out of memory");
        k = e;
    }
    free(cp); free(sym); free(at);
    return rc;
}

int mt_bpe_encode(const mt_bpe *t, const char *text, size_t len, uint32_t **ids, size_t *n, size_t *cap, char *err,
                  size_t errlen) {
    out_ids o = {ids, n, cap};
    const unsigned char *s = (const unsigned char *)text;
    size_t from = 0;
    for (size_t i = 0; i <= len; i++) {
        int hit = -1;
        if (i < len && !(t->added_first[s[i] >> 3] >> (s[i] & 7) & 1)) continue;
        for (int a = 0; i < len && a < t->nadded && hit < 0; a++)
            if (t->added_len[a] <= len - i && !memcmp(s + i, t->added[a], t->added_len[a])) hit = a;
        if (hit < 0 && i < len) continue;
        if (i > from && encode_plain(t, s + from, i - from, from, &o, err, errlen)) return -1;
        if (hit < 0) break;
        if (emit(&o, &t->added_id[hit], 1)) return snprintf(err, errlen, "out of memory"), -1;
        from = i + t->added_len[hit];
        i = from - 1;
    }
    return 0;
}
