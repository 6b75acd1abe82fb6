// prepare_data: turns a text file into llm.c's token files (docs/design.md §6).
//
//   tools/prepare_data INPUT.txt OUTPREFIX [--val-fraction 0.1] [--tokenizer DIR]
//   tools/prepare_data --decode TOKENS.bin [--tokenizer DIR]
//
// writes OUTPREFIX_train.bin and OUTPREFIX_val.bin: a header of 256
// little-endian int32 (magic 20240520, version, token count), then the
// tokens, little-endian: uint16 (version 1) when every id fits, else uint32
// (version 2). Without --tokenizer the tokenizer is bytes: token = byte
// value, vocabulary 256, so any file (UTF-8 or not) works and nothing needs
// downloading. --tokenizer DIR reads DIR/tokenizer.json, a Hugging Face
// byte-level BPE tokenizer (GPT-2, Llama 3; src/bpe.c), and encodes as it
// does; the text must then be UTF-8. Validation is the last fraction of the
// tokens, the convention of llm.c's tinyshakespeare split.
// --decode writes a token file's text to standard output (bytes, or the
// tokenizer's), so a round trip is two commands.
#include "bpe.h"
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "isa.h"

// A binary built for another CPU stops here with one line (src/isa.c).
MT_ISA_GUARD_PROGRAM

#define MT_DATA_MAGIC 20240520
#define MT_DATA_HEADER_INTS 256

__attribute__((format(printf, 2, 3)))
static _Noreturn void mt_prep_fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "prepare_data: error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(code);
}

static unsigned char *mt_prep_read(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) mt_prep_fail(MT_EXIT_USAGE, "cannot read %s: %s", path, strerror(errno));
    size_t cap = 1 << 20, n = 0;
    unsigned char *buf = malloc(cap);
    for (size_t k = 1; buf && k > 0;) {
        if (n == cap) {
            unsigned char *p = realloc(buf, cap *= 2);
            if (!p) free(buf);
            buf = p;
            if (!buf) break;
        }
        k = fread(buf + n, 1, cap - n, f);
        n += k;
    }
    if (!buf) mt_prep_fail(MT_EXIT_FAIL, "out of memory reading %s", path);
    if (ferror(f)) mt_prep_fail(MT_EXIT_USAGE, "cannot read %s: %s", path, strerror(errno));
    fclose(f);
    *len = n;
    return buf;
}

static void mt_prep_put_i32(unsigned char *p, int32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)((uint32_t)v >> (8 * i));
}

static int mt_prep_write_all(int fd, const unsigned char *p, size_t n) {
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

// One token file, written to path.tmp, fsynced and renamed: a crash or a
// full disk never leaves a truncated .bin that a training run would read.
// wide: uint32 tokens (version 2), else uint16 (version 1).
static void mt_prep_write_tokens(const char *path, const uint32_t *tok, size_t n, int wide) {
    unsigned char header[MT_DATA_HEADER_INTS * 4] = {0}, chunk[1 << 16];
    size_t w = wide ? 4 : 2;
    mt_prep_put_i32(header + 0, MT_DATA_MAGIC);
    mt_prep_put_i32(header + 4, wide ? 2 : 1);
    mt_prep_put_i32(header + 8, (int32_t)n);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        mt_prep_fail(MT_EXIT_USAGE, "output path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) mt_prep_fail(MT_EXIT_USAGE, "cannot create %s: %s", tmp, strerror(errno));
    int bad = mt_prep_write_all(fd, header, sizeof header);
    for (size_t i = 0; !bad && i < n; i += sizeof chunk / w) {
        size_t m = MT_MIN(n - i, sizeof chunk / w);
        for (size_t j = 0; j < m; j++)
            for (size_t b = 0; b < w; b++) chunk[w * j + b] = (unsigned char)(tok[i + j] >> (8 * b));
        bad = mt_prep_write_all(fd, chunk, w * m);
    }
    if (!bad) bad = fsync(fd);
    int e = errno;
    if (close(fd) && !bad) { bad = 1; e = errno; }  // NFS reports write errors at close
    if (bad) {
        unlink(tmp);
        mt_prep_fail(MT_EXIT_FAIL, "cannot write %s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path)) {
        e = errno;
        unlink(tmp);
        mt_prep_fail(MT_EXIT_FAIL, "cannot rename %s to %s: %s", tmp, path, strerror(e));
    }
}

// --decode: a token file's text on standard output.
static int mt_prep_decode(const char *path, const mt_bpe *tk) {
    size_t len;
    unsigned char *raw = mt_prep_read(path, &len);
    int32_t h[3] = {0, 0, 0};
    for (int k = 0; k < 3 && len >= 12; k++)
        h[k] = (int32_t)((uint32_t)raw[4 * k] | (uint32_t)raw[4 * k + 1] << 8 | (uint32_t)raw[4 * k + 2] << 16 | (uint32_t)raw[4 * k + 3] << 24);
    size_t w = h[1] == 2 ? 4 : 2;
    if (len < MT_DATA_HEADER_INTS * 4 || h[0] != MT_DATA_MAGIC || (h[1] != 1 && h[1] != 2) || h[2] < 0 ||
        len != MT_DATA_HEADER_INTS * 4 + w * (size_t)h[2])
        mt_prep_fail(MT_EXIT_USAGE, "%s is not an llm.c token file (magic, version 1 or 2, count matching the size)", path);
    for (size_t i = 0; i < (size_t)h[2]; i++) {
        const unsigned char *p = raw + MT_DATA_HEADER_INTS * 4 + w * i;
        uint32_t id = w == 2 ? (uint32_t)p[0] | (uint32_t)p[1] << 8
                             : (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        size_t n = 1;
        unsigned char byte = (unsigned char)id;
        const char *b = tk ? mt_bpe_decode(tk, id, &n) : id < 256 ? (const char *)&byte : NULL;
        if (!b) mt_prep_fail(MT_EXIT_USAGE, "%s: token %zu is %u, outside the %s vocabulary", path, i, id, tk ? "tokenizer's" : "byte");
        fwrite(b, 1, n, stdout);
    }
    free(raw);
    return fflush(stdout) ? MT_EXIT_FAIL : MT_EXIT_OK;
}

static double mt_prep_parse_fraction(const char *s) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0 && v < 1))
        mt_prep_fail(MT_EXIT_USAGE, "--val-fraction must be a number in (0, 1), got '%s'", s);
    return v;
}

int main(int argc, char **argv) {
    const char *usage = "usage: prepare_data INPUT.txt OUTPREFIX [--val-fraction 0.1] [--tokenizer DIR]\n"
                        "       prepare_data --decode TOKENS.bin [--tokenizer DIR]";
    const char *pos[2] = {NULL, NULL}, *tok_dir = NULL, *decode = NULL;
    int npos = 0;
    double frac = 0.1;
    // Over a file-size limit, fail with EFBIG and remove the tmp file
    // rather than die by signal and leave it behind.
    signal(SIGXFSZ, SIG_IGN);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--val-fraction") || !strcmp(argv[i], "--tokenizer") || !strcmp(argv[i], "--decode")) {
            if (i + 1 >= argc) mt_prep_fail(MT_EXIT_USAGE, "%s needs a value; %s", argv[i], usage);
            if (!strcmp(argv[i], "--val-fraction")) frac = mt_prep_parse_fraction(argv[++i]);
            else if (!strcmp(argv[i], "--tokenizer")) tok_dir = argv[++i];
            else decode = argv[++i];
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("%s\n  --val-fraction X   the last fraction X of the tokens is the validation split (default 0.1)\n"
                   "  --tokenizer DIR    DIR/tokenizer.json: a Hugging Face byte-level BPE tokenizer (default: bytes, vocab 256)\n"
                   "  --decode FILE      write a token file's text to standard output\n", usage);
            return MT_EXIT_OK;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            mt_prep_fail(MT_EXIT_USAGE, "unknown flag %s; %s", argv[i], usage);
        } else if (npos < 2) {
            pos[npos++] = argv[i];
        } else {
            mt_prep_fail(MT_EXIT_USAGE, "unexpected argument %s; %s", argv[i], usage);
        }
    }
    if (decode ? npos != 0 : npos != 2) mt_prep_fail(MT_EXIT_USAGE, "%s", usage);
    mt_bpe *tk = NULL;
    if (tok_dir) {
        char err[1200];
        tk = mt_bpe_load(tok_dir, err, sizeof err);
        if (!tk) mt_prep_fail(MT_EXIT_USAGE, "--tokenizer %s", err);
    }
    if (decode) {
        int rc = mt_prep_decode(decode, tk);
        mt_bpe_free(tk);
        return rc;
    }

    size_t n;
    unsigned char *text = mt_prep_read(pos[0], &n);
    if (n == 0) mt_prep_fail(MT_EXIT_USAGE, "%s is empty", pos[0]);
    uint32_t *tok = NULL;
    size_t ntok = 0, cap = 0;
    if (tk) {
        char err[300];
        if (mt_bpe_encode(tk, (const char *)text, n, &tok, &ntok, &cap, err, sizeof err))
            mt_prep_fail(MT_EXIT_USAGE, "%s: %s (--tokenizer needs UTF-8 text)", pos[0], err);
    } else {
        tok = malloc((n ? n : 1) * sizeof *tok);
        if (!tok) mt_prep_fail(MT_EXIT_FAIL, "out of memory");
        for (size_t i = 0; i < n; i++) tok[i] = text[i];
        ntok = n;
    }
    if (ntok > INT32_MAX) mt_prep_fail(MT_EXIT_USAGE, "%s has %zu tokens; the header counts tokens in int32", pos[0], ntok);
    size_t nval = (size_t)((double)ntok * frac), ntrain = ntok - nval;
    // A split of one token has no (input, target) pair to train or score.
    if (ntrain < 2 || nval < 2)
        mt_prep_fail(MT_EXIT_USAGE, "%s has %zu tokens: train %zu and val %zu; each split needs at least 2",
                     pos[0], ntok, ntrain, nval);
    int vocab = tk ? mt_bpe_vocab_size(tk) : 256, wide = vocab > 65536;
    char path[4096];
    snprintf(path, sizeof path, "%s_train.bin", pos[1]);
    mt_prep_write_tokens(path, tok, ntrain, wide);
    snprintf(path, sizeof path, "%s_val.bin", pos[1]);
    mt_prep_write_tokens(path, tok + ntrain, nval, wide);
    if (tk)
        printf("prepare_data: %s: %zu bytes -> %zu tokens (%s byte-level BPE, vocab %d: train with --vocab-size %d); %zu train "
               "tokens -> %s_train.bin, %zu val tokens -> %s_val.bin (%s)\n", pos[0], n, ntok, mt_bpe_kind(tk), vocab, vocab,
               ntrain, pos[1], nval, pos[1], wide ? "uint32" : "uint16");
    else
        printf("prepare_data: %s: %zu train tokens -> %s_train.bin, %zu val tokens -> %s_val.bin (byte tokens, vocab 256)\n",
               pos[0], ntrain, pos[1], nval, pos[1]);
    free(tok);
    free(text);
    mt_bpe_free(tk);
    return MT_EXIT_OK;
}
