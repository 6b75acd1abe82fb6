// outfile.c: atomic replacement of output files (see outfile.h).
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int mt_fsync_dir(int dirfd) {
    if (fsync(dirfd) == 0 || errno == EINVAL) return 0;
    return -1;
}

static int fail(char *err, size_t errlen, const char *what, int e) {
    snprintf(err, errlen, "%s: %s", what, strerror(e ? e : EIO));
    return -1;
}

// Every byte through write(2), retried on short writes and EINTR; the first
// error is kept (stdio would report it only as a failed fflush).
static ssize_t cookie_write(void *v, const char *p, size_t n) {
    mt_outfile *o = v;
    if (o->err) return 0;
    for (size_t done = 0; done < n;) {
        ssize_t k = write(o->fd, p + done, n - done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            o->err = k < 0 ? errno : EIO;
            return 0;  // fopencookie: 0 is an error, the stream's error flag is set
        }
        done += (size_t)k;
    }
    return (ssize_t)n;
}

// A name no user file and no concurrent writer holds: pid, clock and a
// counter, retried on EEXIST.
static uint64_t tmp_salt(void) {
    static _Atomic unsigned counter;  // distinct names within one process
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)ts.tv_sec ^ ((uint64_t)counter++ << 40);
    x ^= x >> 29;
    return x;
}

int mt_outfile_openat(mt_outfile *o, int dirfd, const char *name, const char *label, char *err, size_t errlen) {
    memset(o, 0, sizeof *o);
    o->fd = -1;
    o->dirfd = dirfd;
    snprintf(o->label, sizeof o->label, "%s", label);
    if (!name[0] || strchr(name, '/') || strlen(name) >= sizeof o->name) return fail(err, errlen, label, EINVAL);
    snprintf(o->name, sizeof o->name, "%s", name);
    struct stat sb;
    if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(sb.st_mode) && !S_ISLNK(sb.st_mode)) {
        snprintf(err, errlen, "%s: exists and is not a regular file; refusing to replace it", label);
        return -1;
    }
    for (int tries = 0; o->fd < 0; tries++) {
        // The target's name cut to 180 bytes keeps the temporary under NAME_MAX.
        snprintf(o->tmp, sizeof o->tmp, ".%.180s.tmp.%ld.%016llx", name, (long)getpid(), (unsigned long long)tmp_salt());
        o->fd = openat(dirfd, o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (o->fd < 0 && (errno != EEXIST || tries > 100)) return fail(err, errlen, label, errno);
    }
    cookie_io_functions_t io = {.write = cookie_write};
    o->fp = fopencookie(o, "w", io);
    if (!o->fp) {
        int e = errno;
        mt_outfile_abort(o);
        return fail(err, errlen, label, e);
    }
    return 0;
}

int mt_outfile_open(mt_outfile *o, const char *path, char *err, size_t errlen) {
    const char *slash = strrchr(path, '/');
    char dir[1100];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        memset(o, 0, sizeof *o);
        o->fd = o->dirfd = -1;
        return fail(err, errlen, path, errno);
    }
    if (mt_outfile_openat(o, dfd, slash ? slash + 1 : path, path, err, errlen)) {
        close(dfd);
        o->dirfd = -1;
        return -1;
    }
    o->own_dirfd = 1;
    return 0;
}

int mt_outfile_write(mt_outfile *o, const void *p, size_t n) {
    return n && fwrite(p, 1, n, o->fp) != n ? -1 : 0;
}

int mt_outfile_finish(mt_outfile *o, char *err, size_t errlen) {
    int bad = fflush(o->fp) != 0 || ferror(o->fp);
    int e = o->err ? o->err : errno;
    fclose(o->fp);  // the cookie has no close hook: the descriptor stays ours
    o->fp = NULL;
    if (!bad && fsync(o->fd)) bad = 1, e = errno;
    // NFS reports write errors at close.
    if (close(o->fd) && !bad) bad = 1, e = errno;
    o->fd = -1;
    o->finished = 1;
    if (bad) {
        mt_outfile_abort(o);
        return fail(err, errlen, o->label, e);
    }
    return 0;
}

int mt_outfile_publish(mt_outfile *o, char *err, size_t errlen) {
    if (renameat(o->dirfd, o->tmp, o->dirfd, o->name)) {
        int e = errno;
        mt_outfile_abort(o);
        return fail(err, errlen, o->label, e);
    }
    o->tmp[0] = 0;  // nothing left to remove
    int rc = 0;
    if (mt_fsync_dir(o->dirfd)) {
        snprintf(err, errlen, "%s: written, but fsync of its directory failed (%s)", o->label, strerror(errno));
        rc = -1;
    }
    mt_outfile_abort(o);  // closes the directory
    return rc;
}

int mt_outfile_commit(mt_outfile *o, char *err, size_t errlen) {
    return mt_outfile_finish(o, err, errlen) ? -1 : mt_outfile_publish(o, err, errlen);
}

void mt_outfile_abort(mt_outfile *o) {
    int e = errno;
    if (o->fp) fclose(o->fp);
    o->fp = NULL;
    if (o->fd >= 0) close(o->fd);
    o->fd = -1;
    if (o->tmp[0] && o->dirfd >= 0) unlinkat(o->dirfd, o->tmp, 0);
    o->tmp[0] = 0;
    if (o->own_dirfd && o->dirfd >= 0) close(o->dirfd);
    o->dirfd = -1;
    o->own_dirfd = 0;
    errno = e;
}
