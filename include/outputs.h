// outputs.h: every output path checked before any work (issue 13, class 6).
#ifndef MT_OUTPUTS_H
#define MT_OUTPUTS_H

#include <stddef.h>

#include "config.h"

// Rank 0, before reading data or allocating the model. Refuses, with one
// line naming the flag: an output that exists but is not what it will be
// written as (a device like /dev/full, a FIFO, a directory in place of a
// file, a file in place of a directory); an output whose directory is
// missing or not writable (probed by creating and removing a fresh O_EXCL
// name, never PATH.tmp, which may be the user's); an output that is an
// input (--config, --data-path, --train-data-path, --valid-data-path,
// --init-from and its files, --load) or another output (--timeline's .svg
// and .json, --metrics-file, --export-llmc, --dump-params, ...). Paths are
// compared by device and inode when they exist, by resolved directory and
// name otherwise. argv gives the --config paths. Returns 0 or -1 with err.
int mt_outputs_check(const mt_config *c, int argc, char **argv, char *err, size_t errlen);

// --timeline PATH's second file: PATH with .svg replaced by .json, else
// PATH.json (trace.c writes both).
void mt_outputs_timeline_json(const char *path, char *out, size_t outlen);

#endif
