// outfile.h: output files that are either wholly written or not changed.
//
// A file is written to a temporary sibling in the target's directory, named
// ".NAME.tmp.PID.RANDOM" and created with O_EXCL | O_NOFOLLOW (it can never
// be a user's file, a link, or another writer's temporary), through a FILE *
// whose every write is checked (fopencookie: stdio's formatting, our write()).
// Committing flushes, fsyncs and closes it, renames it over the target and
// fsyncs the directory; any failure removes the temporary and leaves the
// previous file as it was. The target itself is never followed: a symlink
// at the target's name is replaced, never what it points to.
#ifndef MT_OUTFILE_H
#define MT_OUTFILE_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    FILE *fp;           // write here (fprintf, fwrite, mt_outfile_write)
    int fd;             // the temporary's descriptor (closed at finish)
    int dirfd;          // the target's directory
    int own_dirfd;      // dirfd was opened here (closed at the end)
    int err;            // the first errno of a failed write, 0 if none
    int finished;       // flushed, fsynced and closed
    char name[256];     // the target's name in dirfd
    char tmp[256];      // the temporary's name in dirfd
    char label[1100];   // the target's path, for messages
} mt_outfile;

// Opens a temporary for `path` (its directory must exist). Returns 0, or -1
// with "PATH: reason" in err; refuses a target that exists and is not a
// regular file or a symlink (a directory, a device, a FIFO).
int mt_outfile_open(mt_outfile *o, const char *path, char *err, size_t errlen);

// The same inside an open directory (checkpoints: relative to --save's fd);
// label names the target in messages. dirfd stays the caller's.
int mt_outfile_openat(mt_outfile *o, int dirfd, const char *name, const char *label, char *err, size_t errlen);

// Writes n bytes (the error, if any, is kept for commit). Returns 0 or -1.
int mt_outfile_write(mt_outfile *o, const void *p, size_t n);

// Flushes, fsyncs and closes the temporary: 0, or -1 with a reason in err
// (the temporary is then removed).
int mt_outfile_finish(mt_outfile *o, char *err, size_t errlen);

// Renames the finished temporary over the target and fsyncs the directory.
int mt_outfile_publish(mt_outfile *o, char *err, size_t errlen);

// finish + publish.
int mt_outfile_commit(mt_outfile *o, char *err, size_t errlen);

// Drops the temporary (any state; safe after a failed commit).
void mt_outfile_abort(mt_outfile *o);

// fsync of a directory; file systems that cannot (EINVAL) count as done.
int mt_fsync_dir(int dirfd);

#endif
