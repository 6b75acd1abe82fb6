// data.c: token files and the sample order.
#include "data.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "input.h"
#include "rng.h"

int mt_token_file_read(mt_token_file *f, const char *path, int vocab, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    struct stat st;
    // Non-blocking, regular files only (input.h): a FIFO is refused, not
    // waited on; the size below is checked against the header before any
    // allocation.
    char why[1400];
    int fd = mt_input_open(path, "", &st, why, sizeof why);
    if (fd < 0) {
        int e = errno;
        if (e == EISDIR) snprintf(err, errlen, "%s: is a directory, expected an llm.c token file", path);
        else if (e == ENODEV) snprintf(err, errlen, "%s: not a regular file, expected an llm.c token file", path);
        else snprintf(err, errlen, "%s: cannot open token file (%s)", path, strerror(e));
        return -1;
    }
    FILE *fp = fdopen(fd, "rb");
    if (!fp) { close(fd); snprintf(err, errlen, "%s: cannot open token file (%s)", path, strerror(errno)); return -1; }
    int32_t hdr[256];
    size_t got = fread(hdr, sizeof(int32_t), 256, fp);
    int rc = -1;
    if (got != 256) { snprintf(err, errlen, "%s: truncated header (%zu bytes, need 1024)", path, got * 4); goto out; }
    if (hdr[0] == 20240326) { snprintf(err, errlen, "%s: is an llm.c model file (magic 20240326; --init-from takes it), not a token file", path); goto out; }
    if (hdr[0] != MT_TOKENS_MAGIC) { snprintf(err, errlen, "%s: bad magic %d (want %d: llm.c token file)", path, hdr[0], MT_TOKENS_MAGIC); goto out; }
    if (hdr[1] != 1 && hdr[1] != 2) { snprintf(err, errlen, "%s: unsupported version %d (1: uint16 tokens, 2: uint32 tokens)", path, hdr[1]); goto out; }
    size_t esize = hdr[1] == 1 ? 2 : 4;
    if (hdr[2] < 2) { snprintf(err, errlen, "%s: header says %d tokens, need at least 2", path, hdr[2]); goto out; }
    size_t ntok = (size_t)hdr[2];
    if ((size_t)st.st_size != 1024 + ntok * esize) {
        snprintf(err, errlen, "%s: header says %zu tokens (%zu bytes of data) but the file has %lld bytes of data",
                 path, ntok, ntok * esize, (long long)st.st_size - 1024);
        goto out;
    }
    // The file's width is read as is when it is the memory's; a uint32 file
    // under a vocabulary of 16-bit ids is narrowed chunk by chunk (no second
    // copy of the file is ever held).
    f->width = mt_token_width(vocab);
    f->tok = mt_malloc(ntok * (size_t)f->width);
    f->ntok = ntok;
    got = 0;
    if (esize == (size_t)f->width) got = fread(f->tok, esize, ntok, fp);
    else if (esize == 2) {  // uint16 file, 4-byte ids (a vocabulary past 65536)
        uint16_t *tmp = mt_malloc(ntok * 2);
        got = fread(tmp, 2, ntok, fp);
        for (size_t i = 0; i < got; i++) ((uint32_t *)f->tok)[i] = tmp[i];
        free(tmp);
    } else {  // uint32 file, 2-byte ids: chunk by chunk
        uint32_t chunk[4096];
        size_t k;
        while (got < ntok && (k = fread(chunk, 4, MT_MIN(ntok - got, (size_t)4096), fp)) > 0) {
            for (size_t i = 0; i < k; i++) {
                if (chunk[i] >= (uint32_t)vocab) {
                    snprintf(err, errlen, "%s: token %zu has id %u >= vocabulary size %d (--vocab-size)", path, got + i, chunk[i], vocab);
                    goto out;
                }
                ((uint16_t *)f->tok)[got + i] = (uint16_t)chunk[i];
            }
            got += k;
        }
    }
    if (got != ntok) { snprintf(err, errlen, "%s: read %zu of %zu tokens", path, got, ntok); goto out; }
    for (size_t i = 0; i < ntok; i++) {
        uint32_t t = mt_token_at(f->tok, f->width, i);
        if (t >= (uint32_t)vocab) {
            snprintf(err, errlen, "%s: token %zu has id %u >= vocabulary size %d (--vocab-size)", path, i, t, vocab);
            goto out;
        }
    }
    rc = 0;
out:
    fclose(fp);
    if (rc) mt_token_file_free(f);
    return rc;
}

void mt_token_file_free(mt_token_file *f) {
    free(f->tok);
    memset(f, 0, sizeof *f);
}

mt_split_view mt_split_make(const mt_token_file *f, size_t begin, size_t end, int T, int shuffle, uint64_t seed) {
    mt_split_view v = {(const unsigned char *)f->tok + begin * (size_t)f->width, f->width, end - begin, 0, T, shuffle, seed};
    v.nsamples = v.ntok > (size_t)T ? (v.ntok - 1) / (size_t)T : 0;
    return v;
}

// The first token of sample j: its window starts there (epoch-wise
// shuffled when asked).
static const unsigned char *sample_at(const mt_split_view *v, uint64_t j) {
    uint64_t n = v->nsamples, k = j % n;
    if (v->shuffle) k = mt_rng_permute(v->seed, j / n, k, n);
    return v->tok + k * (uint64_t)v->T * (uint64_t)v->width;
}

void mt_split_fill(const mt_split_view *v, uint64_t j, int *inputs, int *targets, int b, int bcol) {
    const unsigned char *w = sample_at(v, j);
    for (int p = 0; p < v->T; p++) {
        inputs[p * b + bcol] = (int)mt_token_at(w, v->width, (size_t)p);
        targets[p * b + bcol] = (int)mt_token_at(w, v->width, (size_t)p + 1);
    }
}

void mt_split_fill_at(const mt_split_view *v, uint64_t j, const int *pos, int npos, int *inputs, int *targets, int b,
                      int bcol) {
    const unsigned char *w = sample_at(v, j);
    for (int p = 0; p < npos; p++) {
        inputs[p * b + bcol] = (int)mt_token_at(w, v->width, (size_t)pos[p]);
        targets[p * b + bcol] = (int)mt_token_at(w, v->width, (size_t)pos[p] + 1);
    }
}

void mt_split_ranges(size_t ntok, const int split[3], size_t begin[3], size_t end[3]) {
    double total = (double)split[0] + split[1] + split[2];
    size_t at = 0;
    double acc = 0;
    for (int i = 0; i < 3; i++) {
        acc += split[i];
        size_t e = i == 2 ? ntok : (size_t)((double)ntok * acc / total);
        begin[i] = at;
        end[i] = e;
        at = e;
    }
}
