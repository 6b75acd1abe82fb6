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
// tokenizer's), so a round trip is two commands. Files follow the trainer's
// rules (docs/bad-input.md, "Hostile inputs: tools/prepare_data"): inputs
// are regular files, outputs are checked before any work and replaced only
// whole (src/outfile.c).
#include "bpe.h"
#include "common.h"
#include "input.h"
#include "outfile.h"

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

// An input: a regular file (input.h: opened non-blocking, so a FIFO is one
// line rather than a hang, and /dev/zero is refused rather than read
// forever). The descriptor's stat names the file for the collision checks.
static int mt_prep_open(const char *path, struct stat *sb) {
    char err[1200];
    int fd = mt_input_open(path, "", sb, err, sizeof err);
    if (fd < 0) mt_prep_fail(MT_EXIT_USAGE, "%s", err);
    return fd;
}

// The whole text (len bytes, checked against the limit by the caller).
static unsigned char *mt_prep_read(int fd, const char *path, size_t len) {
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf) mt_prep_fail(MT_EXIT_FAIL, "out of memory reading %s (%zu bytes)", path, len);
    if (mt_input_pread(fd, buf, len, 0)) mt_prep_fail(MT_EXIT_FAIL, "cannot read %s: %s", path, strerror(errno));
    return buf;
}

static void mt_prep_put_i32(unsigned char *p, int32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)((uint32_t)v >> (8 * i));
}

// An output, before any work: not a directory, device or FIFO (followed
// through symlinks, as the trainer's outputs.c does), not one of the inputs
// (device and inode: ./x, a symlink or a hard link to an input is refused
// too), and its directory takes a new file (outfile.h's own open, dropped
// at once: a random O_EXCL name, so nothing the user has is touched).
static void mt_prep_check_output(const char *path, const struct stat *in, const char *const *in_path, int nin) {
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) mt_prep_fail(MT_EXIT_USAGE, "%s: is a directory, expected a file name", path);
        if (!S_ISREG(sb.st_mode))
            mt_prep_fail(MT_EXIT_USAGE, "%s: exists and is not a regular file (a device, FIFO or socket is never replaced)", path);
        for (int k = 0; k < nin; k++)
            if (sb.st_dev == in[k].st_dev && sb.st_ino == in[k].st_ino)
                mt_prep_fail(MT_EXIT_USAGE, "%s is the input %s: refusing to overwrite an input", path, in_path[k]);
    }
    mt_outfile o;
    char err[1400];
    if (mt_outfile_open(&o, path, err, sizeof err)) mt_prep_fail(MT_EXIT_USAGE, "cannot create %s", err);
    mt_outfile_abort(&o);
}

// One token file into o: a header of 256 int32 (magic, version, count),
// then the tokens, little-endian; wide: uint32 (version 2), else uint16.
static int mt_prep_write_tokens(mt_outfile *o, const uint32_t *tok, size_t n, int wide) {
    unsigned char header[MT_DATA_HEADER_INTS * 4] = {0}, chunk[1 << 16];
    size_t w = wide ? 4 : 2;
    mt_prep_put_i32(header + 0, MT_DATA_MAGIC);
    mt_prep_put_i32(header + 4, wide ? 2 : 1);
    mt_prep_put_i32(header + 8, (int32_t)n);
    int bad = mt_outfile_write(o, header, sizeof header);
    for (size_t i = 0; !bad && i < n; i += sizeof chunk / w) {
        size_t m = MT_MIN(n - i, sizeof chunk / w);
        for (size_t j = 0; j < m; j++)
            for (size_t b = 0; b < w; b++) chunk[w * j + b] = (unsigned char)(tok[i + j] >> (8 * b));
        bad = mt_outfile_write(o, chunk, w * m);
    }
    return bad;
}

// Both splits through outfile.h (a temporary with an unpredictable name,
// O_EXCL | O_NOFOLLOW, fsynced, renamed over the target): a symlink or a
// user's PATH.tmp is never followed or truncated, and a full disk leaves
// the previous files as they were, both of them, since neither is renamed
// before both are written.
static void mt_prep_write_splits(const char *const path[2], const uint32_t *const tok[2], const size_t n[2], int wide) {
    mt_outfile o[2];
    char err[1400];
    for (int k = 0; k < 2; k++) {
        int bad = mt_outfile_open(&o[k], path[k], err, sizeof err);
        // A failed write is kept in o[k] and reported by finish, with its errno.
        if (!bad) mt_prep_write_tokens(&o[k], tok[k], n[k], wide), bad = mt_outfile_finish(&o[k], err, sizeof err);
        if (bad) {
            for (int j = 0; j <= k; j++) mt_outfile_abort(&o[j]);
            mt_prep_fail(MT_EXIT_FAIL, "cannot write %s", err);
        }
    }
    for (int k = 0; k < 2; k++)
        if (mt_outfile_publish(&o[k], err, sizeof err)) {
            if (k == 0) mt_outfile_abort(&o[1]);
            mt_prep_fail(MT_EXIT_FAIL, "cannot write %s", err);
        }
}

// Standard output, checked: a full disk (or a reader that closed its end
// while SIGPIPE is ignored; by default that signal ends the process first)
// is one line and exit 1, not a silent exit.
static void mt_prep_put(const void *p, size_t n) {
    if (fwrite(p, 1, n, stdout) != n) mt_prep_fail(MT_EXIT_FAIL, "writing standard output: %s", strerror(errno));
}

static void mt_prep_flush(void) {
    if (fflush(stdout)) mt_prep_fail(MT_EXIT_FAIL, "writing standard output: %s", strerror(errno));
}

static uint32_t mt_prep_get(const unsigned char *p, size_t w) {
    uint32_t v = 0;
    for (size_t b = 0; b < w; b++) v |= (uint32_t)p[b] << (8 * b);
    return v;
}

// --decode: a token file's text on standard output, read in chunks (the
// header's count must match the file's size; nothing is sized by it).
static int mt_prep_decode(const char *path, const mt_bpe *tk) {
    struct stat sb;
    int fd = mt_prep_open(path, &sb);
    unsigned char head[MT_DATA_HEADER_INTS * 4], chunk[1 << 16];
    int32_t h[3] = {0, 0, 0};
    int have = (uint64_t)sb.st_size >= sizeof head && !mt_input_pread(fd, head, sizeof head, 0);
    for (int k = 0; k < 3 && have; k++) h[k] = (int32_t)mt_prep_get(head + 4 * k, 4);
    size_t w = h[1] == 2 ? 4 : 2;
    if (!have || h[0] != MT_DATA_MAGIC || (h[1] != 1 && h[1] != 2) || h[2] < 0 ||
        (uint64_t)sb.st_size != sizeof head + w * (uint64_t)h[2])
        mt_prep_fail(MT_EXIT_USAGE, "%s is not an llm.c token file (magic, version 1 or 2, count matching the size)", path);
    for (size_t i = 0; i < (size_t)h[2];) {
        size_t m = MT_MIN((size_t)h[2] - i, sizeof chunk / w);
        if (mt_input_pread(fd, chunk, w * m, sizeof head + w * i))
            mt_prep_fail(MT_EXIT_FAIL, "cannot read %s: %s", path, strerror(errno));
        for (size_t j = 0; j < m; j++, i++) {
            uint32_t id = mt_prep_get(chunk + w * j, w);
            size_t n = 1;
            unsigned char byte = (unsigned char)id;
            const char *b = tk ? mt_bpe_decode(tk, id, &n) : id < 256 ? (const char *)&byte : NULL;
            if (!b) mt_prep_fail(MT_EXIT_USAGE, "%s: token %zu is %u, outside the %s vocabulary", path, i, id, tk ? "tokenizer's" : "byte");
            mt_prep_put(b, n);
        }
    }
    close(fd);
    mt_prep_flush();
    return MT_EXIT_OK;
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
            mt_prep_flush();  // --help on a full disk is exit 1 too
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

    // Inputs: the text and the tokenizer's file, which no output may replace.
    struct stat in[2];
    const char *in_path[2] = {pos[0], NULL};
    char tok_file[4200], path[2][4200];
    int nin = 1, fd = mt_prep_open(pos[0], &in[0]);
    if (tok_dir) {
        mt_bpe_file(tok_dir, tok_file, sizeof tok_file);
        if (stat(tok_file, &in[1]) == 0) in_path[nin++] = tok_file;
    }
    // The text is read whole, so its size is bounded before reading: byte
    // tokens are one a byte and the header counts tokens in int32; BPE
    // tokens take a few bytes each.
    uint64_t max = tk ? (uint64_t)INT32_MAX * 4 : (uint64_t)INT32_MAX;
    if (in[0].st_size == 0) mt_prep_fail(MT_EXIT_USAGE, "%s is empty", pos[0]);
    if ((uint64_t)in[0].st_size > max)
        mt_prep_fail(MT_EXIT_USAGE, "%s: %lld bytes, more than the %llu this tool reads (the header counts tokens in int32): split the text",
                     pos[0], (long long)in[0].st_size, (unsigned long long)max);
    for (int k = 0; k < 2; k++) {
        if (snprintf(path[k], sizeof path[k], "%s_%s.bin", pos[1], k ? "val" : "train") >= (int)sizeof path[k])
            mt_prep_fail(MT_EXIT_USAGE, "output path too long: %s", pos[1]);
        mt_prep_check_output(path[k], in, in_path, nin);
    }
    size_t n = (size_t)in[0].st_size;
    unsigned char *text = mt_prep_read(fd, pos[0], n);
    close(fd);
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
    const char *const out[2] = {path[0], path[1]};
    const uint32_t *const part[2] = {tok, tok + ntrain};
    const size_t count[2] = {ntrain, nval};
    mt_prep_write_splits(out, part, count, wide);
    if (tk)
        printf("prepare_data: %s: %zu bytes -> %zu tokens (%s byte-level BPE, vocab %d: train with --vocab-size %d); %zu train "
               "tokens -> %s_train.bin, %zu val tokens -> %s_val.bin (%s)\n", pos[0], n, ntok, mt_bpe_kind(tk), vocab, vocab,
               ntrain, pos[1], nval, pos[1], wide ? "uint32" : "uint16");
    else
        printf("prepare_data: %s: %zu train tokens -> %s_train.bin, %zu val tokens -> %s_val.bin (byte tokens, vocab 256)\n",
               pos[0], ntrain, pos[1], nval, pos[1]);
    mt_prep_flush();
    free(tok);
    free(text);
    mt_bpe_free(tk);
    return MT_EXIT_OK;
}
