// fault_shim.c: an LD_PRELOAD library that makes the Nth file-system call
// of a chosen kind fail (or kills the process just before it), so the
// tests can stop a save at each of its steps (tests/suite_save_faults.sh).
// Built as build/fault_shim.so (make all). Driven by the environment:
//
//   MT_FAULT_OPS     comma list of calls to count: mkdir, rename, unlink,
//                    creat (an open with O_CREAT), ropen (a read-only
//                    open), write, fsync, malloc (each name covers its *at /
//                    2 variants)
//   MT_FAULT_N       the counted call that meets the fault (1 = first);
//                    0 or unset: only count
//   MT_FAULT_ACTION  fail (default: return -1 with MT_FAULT_ERRNO), kill
//                    (SIGKILL before the call: a crash at that instant) or
//                    swap (rename MT_FAULT_SWAP onto the call's path just
//                    before it, then let it run: a file replaced between a
//                    check and a use)
//   MT_FAULT_ERRNO   the errno of a failure: EIO (default), ENOSPC, EINVAL...
//   MT_FAULT_DIR     only calls on paths under this directory count
//                    (malloc: allocations of MT_FAULT_MIN bytes or more
//                    called from the program itself, not from MPI or BLAS)
//   MT_FAULT_RANK    only this MPI rank (OMPI_COMM_WORLD_RANK; a singleton
//                    is rank 0) counts; unset: every rank
//   MT_FAULT_NO_EXCHANGE=1  renameat2(RENAME_EXCHANGE) fails with EINVAL, as on
//                    a file system that cannot exchange; not counted, so
//                    the counted faults then hit the fallback's steps
//   MT_FAULT_COUNT   at exit, append "rank R calls K mkdir A rename B ..."
//                    (K all counted calls, then each kind's) to this file
//
// Only processes named pretrain_gpt* count, so mpirun and its helpers,
// which inherit LD_PRELOAD, are never affected.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);

typedef struct {
    int ready, active;       // configured; this process takes part
    char ops[256];           // ",mkdir,rename,"
    long n;                  // the faulty call
    int kill, swap, no_exchange, err;
    char swap_from[4096];
    char dir[4096];
    size_t dirlen, min;
    int rank;
    uintptr_t exe_lo, exe_hi;  // the program's code (malloc's callers that count)
    atomic_long count;       // counted calls, all listed kinds together
    atomic_long per_op[8];   // the same by kind (OP_NAMES order)
} shim_state;

#define OP_NAMES {"mkdir", "rename", "unlink", "creat", "ropen", "write", "fsync", "malloc"}
#define NOPS 8

static shim_state S;  // the process's one configuration, read once at load

static int errno_of(const char *s) {
    static const struct { const char *name; int v; } t[] = {
        {"EIO", EIO}, {"ENOSPC", ENOSPC}, {"EINVAL", EINVAL}, {"EACCES", EACCES}, {"EDQUOT", EDQUOT}, {"EROFS", EROFS}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(s, t[i].name)) return t[i].v;
    return atoi(s) > 0 ? atoi(s) : EIO;
}

// The main program is the first object dl_iterate_phdr reports.
static int find_exe(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size, (void)data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
            S.exe_lo = info->dlpi_addr + ph->p_vaddr;
            S.exe_hi = S.exe_lo + ph->p_memsz;
        }
    }
    return 1;  // only the first
}

__attribute__((constructor)) static void shim_init(void) {
    const char *ops = getenv("MT_FAULT_OPS");
    if (!ops || strncmp(program_invocation_short_name, "pretrain_gpt", 12)) return;
    snprintf(S.ops, sizeof S.ops, ",%s,", ops);
    const char *v = getenv("MT_FAULT_N");
    S.n = v ? atol(v) : 0;
    v = getenv("MT_FAULT_ACTION");
    S.kill = v && !strcmp(v, "kill");
    S.swap = v && !strcmp(v, "swap");
    v = getenv("MT_FAULT_NO_EXCHANGE");
    S.no_exchange = v && !strcmp(v, "1");
    v = getenv("MT_FAULT_SWAP");
    snprintf(S.swap_from, sizeof S.swap_from, "%s", v ? v : "");
    v = getenv("MT_FAULT_ERRNO");
    S.err = v ? errno_of(v) : EIO;
    v = getenv("MT_FAULT_DIR");
    snprintf(S.dir, sizeof S.dir, "%s", v ? v : "/");
    S.dirlen = strlen(S.dir);
    v = getenv("MT_FAULT_MIN");
    S.min = v ? (size_t)atoll(v) : 1;
    const char *r = getenv("OMPI_COMM_WORLD_RANK"), *want = getenv("MT_FAULT_RANK");
    S.rank = r ? atoi(r) : 0;
    S.active = !want || atoi(want) == S.rank;
    dl_iterate_phdr(find_exe, NULL);
    S.ready = 1;
}

__attribute__((destructor)) static void shim_report(void) {
    const char *f = getenv("MT_FAULT_COUNT");
    if (!S.ready || !S.active || !f) return;
    static const char *const names[NOPS] = OP_NAMES;
    char line[512];
    int len = snprintf(line, sizeof line, "rank %d calls %ld", S.rank, (long)S.count);
    for (int i = 0; i < NOPS; i++) len += snprintf(line + len, sizeof line - (size_t)len, " %s %ld", names[i], (long)S.per_op[i]);
    len += snprintf(line + len, sizeof line - (size_t)len, "\n");
    int fd = open(f, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        if (write(fd, line, (size_t)len) < 0) {}
        close(fd);
    }
}

static int wanted(const char *op) {
    char key[32];
    snprintf(key, sizeof key, ",%s,", op);
    return S.ready && S.active && strstr(S.ops, key);
}

// Whether dirfd/path lies under MT_FAULT_DIR (a path relative to dirfd is
// resolved through /proc/self/fd; the final component is not followed).
static int in_scope(int dirfd, const char *path) {
    char base[4096] = "", link[64];
    if (path && path[0] == '/') return !strncmp(path, S.dir, S.dirlen);
    if (dirfd == AT_FDCWD) {
        if (!getcwd(base, sizeof base)) return 0;
    } else {
        snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
        ssize_t k = readlink(link, base, sizeof base - 1);
        if (k <= 0) return 0;
        base[k] = 0;
    }
    size_t bl = strlen(base);
    if (bl + 1 < sizeof base && strncmp(base, S.dir, S.dirlen) == 0) return 1;
    // S.dir may be below base only when path goes down into it.
    char full[8192];
    snprintf(full, sizeof full, "%s/%s", base, path ? path : "");
    return !strncmp(full, S.dir, S.dirlen);
}

// 1: this call fails (errno set); 0: go ahead. Kills at the faulty call.
static int fault_here(const char *op, int dirfd, const char *path) {
    if (!wanted(op) || (strcmp(op, "malloc") && !in_scope(dirfd, path))) return 0;
    static const char *const names[NOPS] = OP_NAMES;
    for (int i = 0; i < NOPS; i++)
        if (!strcmp(op, names[i])) atomic_fetch_add(&S.per_op[i], 1);
    long k = atomic_fetch_add(&S.count, 1) + 1;
    if (S.n <= 0 || k != S.n) return 0;
    if (S.kill) raise(SIGKILL);
    if (S.swap) {
        // libc's renameat, not this file's counted one: a swap is not a step.
        static __typeof__(renameat) *real_rn;
        if (!real_rn) real_rn = (__typeof__(renameat) *)dlsym(RTLD_NEXT, "renameat");
        if (path && real_rn && real_rn(AT_FDCWD, S.swap_from, dirfd, path)) {}
        return 0;
    }
    errno = S.err;
    return 1;
}

// The next definition of `name` (libc's), looked up on first use.
#define REAL(name)                           \
    static __typeof__(name) *real_##name;    \
    if (!real_##name) real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

int mkdir(const char *p, mode_t m) {
    REAL(mkdir);
    return fault_here("mkdir", AT_FDCWD, p) ? -1 : real_mkdir(p, m);
}
int mkdirat(int d, const char *p, mode_t m) {
    REAL(mkdirat);
    return fault_here("mkdir", d, p) ? -1 : real_mkdirat(d, p, m);
}
int rename(const char *a, const char *b) {
    REAL(rename);
    return fault_here("rename", AT_FDCWD, a) ? -1 : real_rename(a, b);
}
int renameat(int da, const char *a, int db, const char *b) {
    REAL(renameat);
    return fault_here("rename", da, a) ? -1 : real_renameat(da, a, db, b);
}
int renameat2(int da, const char *a, int db, const char *b, unsigned flags) {
    REAL(renameat2);
    if (S.ready && S.active && S.no_exchange && (flags & RENAME_EXCHANGE) && in_scope(da, a)) {
        errno = EINVAL;
        return -1;
    }
    return fault_here("rename", da, a) ? -1 : real_renameat2(da, a, db, b, flags);
}
int unlink(const char *p) {
    REAL(unlink);
    return fault_here("unlink", AT_FDCWD, p) ? -1 : real_unlink(p);
}
int unlinkat(int d, const char *p, int f) {
    REAL(unlinkat);
    return fault_here("unlink", d, p) ? -1 : real_unlinkat(d, p, f);
}
int rmdir(const char *p) {
    REAL(rmdir);
    return fault_here("unlink", AT_FDCWD, p) ? -1 : real_rmdir(p);
}
// An open that creates a file is a "creat" site. An unnamed O_TMPFILE file is
// the output check's probe (outputs.c), not a step of a save: it leaves
// nothing behind, so it is not a site.
static int creat_fault(int d, const char *p, int flags) {
    if (!(flags & O_CREAT) && (flags & O_TMPFILE) != O_TMPFILE && (flags & O_ACCMODE) == O_RDONLY)
        return fault_here("ropen", d, p);
    return (flags & O_CREAT) && fault_here("creat", d, p);  // O_TMPFILE carries no O_CREAT
}
// The mode argument exists only when the call creates a file.
#define OPEN_MODE(flags, m)                                                   \
    do {                                                                      \
        if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) {          \
            va_list ap;                                                       \
            va_start(ap, flags);                                              \
            m = (mode_t)va_arg(ap, int);                                      \
            va_end(ap);                                                       \
        }                                                                     \
    } while (0)
int openat(int d, const char *p, int flags, ...) {
    REAL(openat);
    mode_t m = 0;
    OPEN_MODE(flags, m);
    return creat_fault(d, p, flags) ? -1 : real_openat(d, p, flags, m);
}
int open(const char *p, int flags, ...) {
    REAL(open);
    mode_t m = 0;
    OPEN_MODE(flags, m);
    return creat_fault(AT_FDCWD, p, flags) ? -1 : real_open(p, flags, m);
}

// fd-based calls: in scope when the descriptor's file lies under the dir.
static int fd_fault(const char *op, int fd) {
    if (!wanted(op)) return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t k = readlink(link, path, sizeof path - 1);
    if (k <= 0) return 0;
    path[k] = 0;
    return fault_here(op, AT_FDCWD, path);
}
ssize_t write(int fd, const void *b, size_t n) {
    REAL(write);
    return fd > 2 && fd_fault("write", fd) ? -1 : real_write(fd, b, n);
}
int fsync(int fd) {
    REAL(fsync);
    return fd_fault("fsync", fd) ? -1 : real_fsync(fd);
}
int fdatasync(int fd) {
    REAL(fdatasync);
    return fd_fault("fsync", fd) ? -1 : real_fdatasync(fd);
}

void *malloc(size_t n) {
    uintptr_t caller = (uintptr_t)__builtin_return_address(0);
    if (n >= S.min && caller >= S.exe_lo && caller < S.exe_hi && wanted("malloc") && fault_here("malloc", AT_FDCWD, NULL))
        return NULL;
    return __libc_malloc(n);
}
