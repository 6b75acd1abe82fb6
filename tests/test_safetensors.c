// test_safetensors.c: the safetensors reader keeps what the writer wrote,
// and refuses every corruption with a message that names the problem;
// a failed write leaves the previous file intact.
#include "safetensors.h"
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

// A fresh directory per case, so cases never see each other's files.
static void tmpdir(char *dir, size_t len) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, len, "%s/mt_st_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) { perror("mkdtemp"); exit(1); }
}

// Entries of dir besides . and ..: a temporary left behind shows up here,
// whatever its name (the writer's are ".NAME.tmp.PID.X").
static int entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d) closedir(d);
    return n;
}

static mt_st_tensor tensor(const char *name, mt_st_dtype dt, int ndim, const int64_t *shape, const void *data) {
    mt_st_tensor t = {.dtype = dt, .ndim = ndim, .data = data};
    snprintf(t.name, sizeof t.name, "%s", name);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) { t.shape[i] = shape[i]; n *= (size_t)shape[i]; }
    t.nbytes = n * mt_st_dtype_size(dt);
    return t;
}

static int file_exists(const char *path) { struct stat st; return stat(path, &st) == 0; }

static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t k = fwrite(p, 1, n, f);
    return fclose(f) || k != n ? -1 : 0;
}

// A small valid file with one F32 (2, 3) named "w": the "intact" reference.
static float ref_w[6] = {1, 2, 3, 4, 5, 6};
static int write_ref(const char *path, char *err, size_t errlen) {
    int64_t shape[2] = {2, 3};
    mt_st_tensor t = tensor("w", MT_ST_F32, 2, shape, ref_w);
    const char *meta[] = {"kind", "reference", NULL};
    return mt_st_write(path, &t, 1, meta, err, errlen);
}

static int is_ref(const char *path) {
    char err[256];
    mt_st_file *f = mt_st_open(path, err, sizeof err);
    const mt_st_tensor *t = f ? mt_st_find(f, "w") : NULL;
    int ok = t && mt_st_count(f) == 1 && t->nbytes == sizeof ref_w && !memcmp(t->data, ref_w, sizeof ref_w) &&
             mt_st_meta(f, "kind") && !strcmp(mt_st_meta(f, "kind"), "reference");
    mt_st_close(f);
    return ok;
}

// F32 with an odd count puts the F64 after it at offset 12: the reader
// must hand out an 8-aligned copy. Also a scalar, an empty tensor, escapes.
TEST(roundtrip_dtypes_shapes_metadata) {
    char dir[256], path[300], err[256];
    tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    float f32[3] = {1.5f, -2.25f, 3e-30f};
    double f64[4] = {1.0 / 3.0, -0.0, 1e300, 2.5};
    int32_t i32[1] = {-7};
    int64_t i64[4] = {INT64_MIN, -1, 0, INT64_MAX};
    int64_t s3[1] = {3}, s22[2] = {2, 2}, s4[1] = {4}, s05[2] = {0, 5};
    mt_st_tensor t[5] = {
        tensor("h.0.attn.qkv.weight", MT_ST_F32, 1, s3, f32), tensor("h.0.double", MT_ST_F64, 1, s4, f64),
        tensor("step", MT_ST_I32, 0, NULL, i32), tensor("empty", MT_ST_F32, 2, s05, NULL),
        tensor("ints \"quoted\" \xc3\xa9", MT_ST_I64, 2, s22, i64),
    };
    const char *meta[] = {"config", "{\"n_layer\": 2}\n\ttab", "seed", "1234", NULL};
    ASSERT(mt_st_write(path, t, 5, meta, err, sizeof err) == 0, "write: %s", err);
    ASSERT(entries(dir) == 1, "tmp file left behind (%d entries)", entries(dir));

    mt_st_file *f = mt_st_open(path, err, sizeof err);
    ASSERT(f, "open: %s", err);
    ASSERT(mt_st_count(f) == 5, "count %d", mt_st_count(f));
    for (int i = 0; i < 5; i++) {
        const mt_st_tensor *r = mt_st_at(f, i);
        ASSERT(!strcmp(r->name, t[i].name), "order: %d is '%s', wrote '%s'", i, r->name, t[i].name);
        ASSERT(r == mt_st_find(f, t[i].name), "find '%s'", t[i].name);
        ASSERT(r->dtype == t[i].dtype && r->ndim == t[i].ndim && r->nbytes == t[i].nbytes, "'%s' meta", r->name);
        for (int d = 0; d < r->ndim; d++) ASSERT(r->shape[d] == t[i].shape[d], "'%s' dim %d", r->name, d);
        ASSERT((uintptr_t)r->data % mt_st_dtype_size(r->dtype) == 0, "'%s' misaligned", r->name);
        ASSERT(!r->nbytes || !memcmp(r->data, t[i].data, r->nbytes), "'%s' data differs", r->name);
    }
    ASSERT(mt_st_at(f, 5) == NULL && mt_st_at(f, -1) == NULL, "mt_st_at out of range");
    ASSERT(mt_st_find(f, "missing") == NULL, "find of a missing name");
    ASSERT(!strcmp(mt_st_meta(f, "config"), meta[1]), "meta config = '%s'", mt_st_meta(f, "config"));
    ASSERT(!strcmp(mt_st_meta(f, "seed"), "1234"), "meta seed");
    ASSERT(mt_st_meta(f, "absent") == NULL, "absent meta key");
    mt_st_close(f);

    FILE *fp = fopen(path, "rb");
    unsigned char len8[8];
    ASSERT(fp && fread(len8, 1, 8, fp) == 8, "reread");
    fclose(fp);
    ASSERT(len8[0] % 8 == 0, "header length %u is not padded to 8", len8[0]);
    unlink(path);
    rmdir(dir);
}

TEST(roundtrip_no_tensors_no_metadata) {
    char dir[256], path[300], err[256];
    tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/e.safetensors", dir);
    ASSERT(mt_st_write(path, NULL, 0, NULL, err, sizeof err) == 0, "write: %s", err);
    mt_st_file *f = mt_st_open(path, err, sizeof err);
    ASSERT(f && mt_st_count(f) == 0 && !mt_st_meta(f, "x") && !mt_st_find(f, "x"), "open: %s", err);
    mt_st_close(f);
    unlink(path);
    rmdir(dir);
}

// A file image: u64 header length, the header, then `data` zero bytes.
static size_t image(unsigned char *buf, const char *json, size_t data) {
    size_t n = strlen(json);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(buf + 8, json, n);
    memset(buf + 8 + n, 0, data);
    return 8 + n + data;
}

#define T1(name, dt, shape, off) "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" off "}"

typedef struct { const char *why, *json; size_t data; const char *expect; } bad_case;

static const bad_case bad_headers[] = {
    {"valid control", "{" T1("a", "F32", "[2]", "[0,8]") "}", 8, NULL},
    {"unclosed object", "{" T1("a", "F32", "[2]", "[0,8]"), 8, "bad header JSON"},
    {"missing colon", "{\"a\" {}}", 0, "expected ':'"},
    {"not an object", "[]", 0, "not a JSON object"},
    {"trailing bytes", "{} x", 0, "bytes after the header"},
    {"unterminated string", "{\"abc", 0, "unterminated string"},
    {"control char", "{\"a\tb\":{}}", 0, "control character"},
    {"bad escape", "{\"a\\xb\":{}}", 0, "bad escape"},
    {"escaped NUL", "{\"a\\u0000\":{}}", 0, "\\u0000"},
    {"lone surrogate", "{\"a\\ud800\":{}}", 0, "surrogate"},
    {"invalid UTF-8", "{\"a\xff\":{}}", 0, "UTF-8"},
    {"leading zero", "{" T1("a", "F32", "[02]", "[0,8]") "}", 8, "leading zero"},
    {"negative dim", "{" T1("a", "F32", "[-2]", "[0,8]") "}", 8, "non-negative integer"},
    {"fractional dim", "{" T1("a", "F32", "[2.0]", "[0,8]") "}", 8, "fraction"},
    {"huge integer", "{" T1("a", "F32", "[2]", "[0,99999999999999999999]") "}", 8, "too large"},
    {"unknown dtype", "{" T1("a", "F8_E4M3", "[2]", "[0,2]") "}", 2, "unsupported dtype 'F8_E4M3'"},
    {"dtype not a string", "{\"a\":{\"dtype\":4}}", 0, "expected a string"},
    {"shape/offset mismatch", "{" T1("a", "F32", "[3]", "[0,8]") "}", 8, "shape [3] of F32 does not match"},
    {"size overflow", "{" T1("a", "F64", "[4294967296,4294967296]", "[0,8]") "}", 8, "does not match"},
    {"overlapping offsets", "{" T1("a", "F32", "[2]", "[0,8]") "," T1("b", "F32", "[2]", "[4,12]") "}", 12, "overlap"},
    {"out-of-range offsets", "{" T1("a", "F32", "[2]", "[0,8]") "}", 4, "out of range"},
    {"reversed offsets", "{" T1("a", "F32", "[1]", "[8,4]") "}", 8, "end before"},
    {"hole in data", "{" T1("a", "F32", "[1]", "[0,4]") "," T1("b", "F32", "[1]", "[8,12]") "}", 12, "hole"},
    {"uncovered tail", "{" T1("a", "F32", "[1]", "[0,4]") "}", 8, "cover 4"},
    {"duplicate names", "{" T1("a", "F32", "[1]", "[0,4]") "," T1("a", "F32", "[1]", "[4,8]") "}", 8, "duplicate tensor name 'a'"},
    {"five dims", "{" T1("a", "F32", "[1,1,1,1,1]", "[0,4]") "}", 4, "more than 4 dims"},
    {"three offsets", "{" T1("a", "F32", "[1]", "[0,4,4]") "}", 4, "more than 2"},
    {"one offset", "{" T1("a", "F32", "[1]", "[0]") "}", 4, "needs 2"},
    {"empty name", "{" T1("", "F32", "[1]", "[0,4]") "}", 4, "empty tensor name"},
    {"long name", "{" T1("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                         "F32", "[1]", "[0,4]") "}", 4, "over 127"},
    {"unknown key", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4, "unknown key 'x'"},
    {"repeated key", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\"}}", 0, "appears twice"},
    {"missing key", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "missing \"data_offsets\""},
    {"metadata number", "{\"__metadata__\":{\"k\":1}}", 0, "not a string"},
    {"metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "appears twice"},
    {"duplicate meta key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate metadata key 'k'"},
};

TEST(corrupt_headers_are_refused_with_reason) {
    unsigned char buf[1024];
    for (size_t i = 0; i < sizeof bad_headers / sizeof *bad_headers; i++) {
        const bad_case *b = &bad_headers[i];
        char err[512] = "";
        mt_st_file *f = mt_st_open_mem(buf, image(buf, b->json, b->data), err, sizeof err);
        if (!b->expect) { ASSERT(f, "%s: refused: %s", b->why, err); mt_st_close(f); continue; }
        ASSERT(!f, "%s: accepted", b->why);
        ASSERT(strstr(err, b->expect), "%s: message '%s' lacks '%s'", b->why, err, b->expect);
    }
}

// Another writer's choices: whitespace, key order, metadata last, header
// order unlike offset order. mt_st_at follows the data offsets.
TEST(foreign_layout_is_accepted) {
    unsigned char buf[512];
    char err[256];
    const char *json = "{ \"b\" : {\"data_offsets\": [4, 8], \"shape\": [1], \"dtype\": \"I32\"},\n"
                       "  \"a\\u00e9\\ud83d\\ude00\": {\"dtype\":\"F32\", \"shape\":[], \"data_offsets\":[0,4]},\r\n"
                       "  \"__metadata__\" : { \"format\" : \"pt\" } }   ";
    size_t n = image(buf, json, 8);
    buf[n - 8] = 1;  // a = 1.4e-45f (denormal), b = 7
    buf[n - 4] = 7;
    mt_st_file *f = mt_st_open_mem(buf, n, err, sizeof err);
    ASSERT(f, "refused: %s", err);
    ASSERT(mt_st_count(f) == 2, "count %d", mt_st_count(f));
    ASSERT(!strcmp(mt_st_at(f, 0)->name, "a\xc3\xa9\xf0\x9f\x98\x80"), "first by offset: '%s'", mt_st_at(f, 0)->name);
    ASSERT(mt_st_at(f, 0)->ndim == 0 && mt_st_at(f, 0)->nbytes == 4, "scalar");
    ASSERT(*(const int32_t *)mt_st_find(f, "b")->data == 7, "b = %d", *(const int32_t *)mt_st_find(f, "b")->data);
    ASSERT(mt_st_meta(f, "format") && !strcmp(mt_st_meta(f, "format"), "pt"), "metadata");
    mt_st_close(f);
}

TEST(short_files_are_refused_with_reason) {
    unsigned char buf[64] = {0};
    char err[256];
    ASSERT(!mt_st_open_mem(buf, 0, err, sizeof err) && strstr(err, "empty file"), "empty: %s", err);
    ASSERT(!mt_st_open_mem(buf, 5, err, sizeof err) && strstr(err, "truncated"), "5 bytes: %s", err);
    size_t n = image(buf, "{}", 0);
    buf[0] = 200;  // header length past the end of the file
    ASSERT(!mt_st_open_mem(buf, n, err, sizeof err) && strstr(err, "exceeds"), "long header: %s", err);
    buf[7] = 0xff;  // 2^63-ish: must not overflow the bounds check
    ASSERT(!mt_st_open_mem(buf, n, err, sizeof err) && strstr(err, "exceeds"), "huge header: %s", err);
    ASSERT(!mt_st_open_mem(buf, 8, NULL, 0), "NULL err buffer must be fine");
}

// Cutting a valid file anywhere must be caught, never read past the end.
TEST(every_truncation_is_refused) {
    unsigned char buf[512];
    char err[256];
    size_t n = image(buf, "{\"__metadata__\":{\"a\":\"b\"}," T1("x", "F64", "[2]", "[0,16]") "}", 16);
    mt_st_file *f = mt_st_open_mem(buf, n, err, sizeof err);
    ASSERT(f, "full file refused: %s", err);
    mt_st_close(f);
    for (size_t k = 0; k < n; k++) {
        f = mt_st_open_mem(buf, k, err, sizeof err);
        ASSERT(!f, "prefix of %zu of %zu bytes accepted", k, n);
    }
}

// Random byte flips must never crash (meaningful under SANITIZE=1); a
// mutant that still parses must still satisfy the invariants.
TEST(mutations_never_crash) {
    unsigned char good[512], buf[512];
    char err[256];
    size_t n = image(good, "{\"__metadata__\":{\"k\":\"v\\u00e9\"}," T1("a", "F32", "[1,2]", "[0,8]") ","
                           T1("b", "I64", "[1]", "[8,16]") "}", 16);
    uint64_t s = 88172645463325252ull;
    for (int it = 0; it < 20000; it++) {
        memcpy(buf, good, n);
        for (int m = 0; m < 1 + it % 4; m++) {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;  // xorshift64
            buf[(s >> 8) % n] = (unsigned char)(s >> 40);
        }
        mt_st_file *f = mt_st_open_mem(buf, n, err, sizeof err);
        for (int i = 0; f && i < mt_st_count(f); i++) {
            const mt_st_tensor *t = mt_st_at(f, i);
            ASSERT(mt_st_find(f, t->name) == t && t->ndim <= 4, "mutant %d: bad tensor %d", it, i);
        }
        mt_st_close(f);
    }
}

TEST(open_refuses_empty_missing_and_directories) {
    char dir[256], path[300], err[512];
    tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/empty.safetensors", dir);
    ASSERT(write_bytes(path, "", 0) == 0, "create");
    ASSERT(!mt_st_open(path, err, sizeof err) && strstr(err, "empty file") && strstr(err, path), "empty: %s", err);
    ASSERT(!mt_st_open(dir, err, sizeof err) && strstr(err, "is a directory"), "dir: %s", err);
    unlink(path);
    ASSERT(!mt_st_open(path, err, sizeof err) && strstr(err, strerror(ENOENT)), "missing: %s", err);
    rmdir(dir);
}

TEST(write_refuses_bad_input) {
    char dir[256], path[300], err[256];
    tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/x.safetensors", dir);
    float v[2] = {1, 2};
    int64_t s2[1] = {2};
    mt_st_tensor t[2] = {tensor("a", MT_ST_F32, 1, s2, v), tensor("a", MT_ST_F32, 1, s2, v)};
    ASSERT(mt_st_write(path, t, 2, NULL, err, sizeof err) && strstr(err, "duplicate"), "dup: %s", err);
    t[1].nbytes = 4;
    snprintf(t[1].name, sizeof t[1].name, "b");
    ASSERT(mt_st_write(path, t, 2, NULL, err, sizeof err) && strstr(err, "nbytes"), "nbytes: %s", err);
    const char *odd[] = {"k", NULL};
    ASSERT(mt_st_write(path, t, 1, odd, err, sizeof err) && strstr(err, "no value"), "odd meta: %s", err);
    ASSERT(!file_exists(path), "a refused write created the file");
    rmdir(dir);
}

// A full disk, simulated with RLIMIT_FSIZE (unprivileged, unlike a small
// tmpfs): the write fails with the system's reason, the old file survives.
TEST(write_failure_keeps_old_file) {
    char dir[256], path[300], tmp[310], err[256];
    tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ASSERT(write_ref(path, err, sizeof err) == 0, "reference: %s", err);

    static float big[4096];
    int64_t shape[1] = {4096};
    mt_st_tensor t = tensor("big", MT_ST_F32, 1, shape, big);
    struct rlimit old, lim;
    ASSERT(getrlimit(RLIMIT_FSIZE, &old) == 0, "getrlimit");
    lim = old;
    lim.rlim_cur = 1024;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of death
    ASSERT(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
    int rc = mt_st_write(path, &t, 1, NULL, err, sizeof err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    ASSERT(rc == -1 && strstr(err, strerror(EFBIG)) && strstr(err, path), "rc %d, err '%s'", rc, err);
    ASSERT(is_ref(path), "old file damaged by a failed write");
    ASSERT(!file_exists(tmp) && entries(dir) == 1, "tmp file left behind (%d entries)", entries(dir));
    unlink(path);
    rmdir(dir);
}

TEST(write_to_bad_places_fails_with_reason) {
    char dir[256], path[300], err[256];
    tmpdir(dir, sizeof dir);
    // /dev/full: never replaced by a rename, even as root.
    ASSERT(write_ref("/dev/full", err, sizeof err) == -1 && strstr(err, "not a regular file"), "/dev/full: %s", err);
    ASSERT(!file_exists("/dev/full.tmp"), "/dev/full.tmp created");
    // A directory at the target.
    ASSERT(write_ref(dir, err, sizeof err) == -1 && strstr(err, "not a regular file"), "dir: %s", err);
    // A missing directory.
    snprintf(path, sizeof path, "%s/no/such/dir/m.safetensors", dir);
    ASSERT(write_ref(path, err, sizeof err) == -1 && strstr(err, strerror(ENOENT)), "missing dir: %s", err);
    // A read-only directory holding an old file (root ignores permissions).
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    ASSERT(write_ref(path, err, sizeof err) == 0, "reference: %s", err);
    if (geteuid() != 0) {
        chmod(dir, 0555);
        int rc = write_ref(path, err, sizeof err);
        chmod(dir, 0755);
        ASSERT(rc == -1 && strstr(err, strerror(EACCES)), "read-only dir: rc %d, '%s'", rc, err);
        ASSERT(is_ref(path), "old file damaged");
    }
    unlink(path);
    rmdir(dir);
}

int main(int argc, char **argv) { return mt_test_main(argc, argv); }
