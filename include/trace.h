// trace.h: a timeline of one training iteration (--timeline FILE.svg): per
// rank, forward and backward spans per micro-batch, communication inside
// them, and idle time blocked on pipeline receives (Narayanan et al. 2021's
// pipeline figures, measured). Written as an SVG (one lane per rank, the
// measured bubble fraction in the title) and as Chrome-trace JSON for
// chrome://tracing or Perfetto (FILE.svg -> FILE.json).
#ifndef MT_TRACE_H
#define MT_TRACE_H

#include "parallel.h"

typedef enum { MT_EV_FORWARD, MT_EV_BACKWARD, MT_EV_COMM, MT_EV_IDLE, MT_EV_OPTIM } mt_event_kind;

typedef struct {
    int kind, chunk, mb;
    double t0, t1;   // seconds since the iteration's start (after a barrier)
} mt_event;

typedef struct mt_trace {
    int on;
    double origin;
    mt_event *ev;
    int n, cap;
} mt_trace;

// Starts recording (collective: a barrier aligns the ranks' origins).
void mt_trace_start(mt_trace *t, const mt_parallel *p);
void mt_trace_add(mt_trace *t, int kind, int chunk, int mb, double t0, double t1);
// Collective: rank 0 gathers every rank's events and writes path (SVG) and
// its .json sibling. Returns 0, or -1 with err on rank 0.
int mt_trace_write(mt_trace *t, const mt_parallel *p, const char *path, const char *title, char *err, size_t errlen);
void mt_trace_free(mt_trace *t);

#endif
