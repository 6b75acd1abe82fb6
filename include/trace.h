// trace.h: a timeline of one training iteration (--timeline FILE.svg): per
// rank, forward and backward spans per micro-batch and model chunk, every
// collective inside them (group, collective, bytes), idle time blocked on
// pipeline receives (Narayanan et al. 2021's pipeline figures, measured),
// and the activations each rank holds over time. Written as an SVG (a time
// axis in ms, one lane per rank with its activation-memory lane under it,
// the measured idle fraction next to the formula in the title) and as
// Chrome-trace JSON for chrome://tracing or Perfetto (FILE.svg -> FILE.json).
#ifndef MT_TRACE_H
#define MT_TRACE_H

#include "config.h"
#include "parallel.h"

typedef enum { MT_EV_FORWARD, MT_EV_BACKWARD, MT_EV_COMM, MT_EV_IDLE, MT_EV_OPTIM, MT_EV_KINDS } mt_event_kind;

typedef struct {
    int kind;
    int chunk, mb;      // forward/backward: model chunk (virtual stage) and micro-batch; else -1
    int group, coll;    // comm/idle: mt_group and mt_coll (comm.h); else -1
    double bytes;       // comm/idle: bytes of the collective (comm.h's convention)
    double t0, t1;      // seconds since the iteration's start (after a barrier)
} mt_event;

typedef struct mt_trace {
    int on;
    double origin;
    double act_bytes;   // activation bytes one micro-batch holds on one chunk (the memory lane)
    mt_event *ev;
    int n, cap;
} mt_trace;

// Starts recording (collective: a barrier aligns the ranks' origins).
void mt_trace_start(mt_trace *t, const mt_parallel *p);
// A compute span (forward, backward, optimizer) of chunk `chunk`, micro-batch `mb`.
void mt_trace_add(mt_trace *t, int kind, int chunk, int mb, double t0, double t1);
// A collective of `group` (mt_group), `coll` (mt_coll) moving `bytes`;
// kind MT_EV_COMM, or MT_EV_IDLE for a pipeline receive (waiting).
void mt_trace_add_comm(mt_trace *t, int kind, int group, int coll, double bytes, double t0, double t1);
// Collective: rank 0 gathers every rank's events and writes path (SVG) and
// its .json sibling. c gives p, v and M for the formula. Returns 0, or -1
// with err on rank 0.
int mt_trace_write(mt_trace *t, const mt_parallel *p, const mt_config *c, const char *path, const char *title, char *err,
                   size_t errlen);
void mt_trace_free(mt_trace *t);

#endif
