// trace.c: timeline events, gathered to rank 0 and drawn. Plain MPI on the
// world communicator: this moves a log, not model data, and is not counted.
#include "trace.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

void mt_trace_start(mt_trace *t, const mt_parallel *p) {
    t->n = 0;
    t->on = 1;
    MPI_Barrier(p->world);
    t->origin = mt_now();
}

void mt_trace_add(mt_trace *t, int kind, int chunk, int mb, double t0, double t1) {
    if (!t || !t->on) return;
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 256;
        t->ev = realloc(t->ev, sizeof(mt_event) * (size_t)t->cap);
        if (!t->ev) mt_fail_local(MT_EXIT_FAIL, "out of memory recording the timeline");
    }
    t->ev[t->n++] = (mt_event){kind, chunk, mb, t0 - t->origin, t1 - t->origin};
}

void mt_trace_free(mt_trace *t) {
    free(t->ev);
    memset(t, 0, sizeof *t);
}

static const char *const KIND_NAME[] = {"forward", "backward", "comm", "idle", "optimizer"};
static const char *const KIND_COLOR[] = {"#4e79a7", "#59a14f", "#f28e2b", "#e15759", "#b07aa1"};

// Idle fraction of one rank: time blocked in pipeline receives over the span.
static double idle_of(const mt_event *e, int n, double span) {
    double s = 0;
    for (int i = 0; i < n; i++)
        if (e[i].kind == MT_EV_IDLE) s += e[i].t1 - e[i].t0;
    return span > 0 ? s / span : 0;
}

static void write_svg(FILE *f, mt_event **ev, const int *cnt, int ranks, double span, double bubble, const char *title) {
    const int lane = 28, left = 70, width = 1000, top = 50;
    double sx = width / (span > 0 ? span : 1);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"11\">\n",
            left + width + 20, top + lane * ranks + 40);
    fprintf(f, "<title>%s</title>\n<text x=\"10\" y=\"20\" font-size=\"14\">%s: measured bubble (idle) fraction %.3f, span %.1f ms</text>\n",
            title, title, bubble, 1e3 * span);
    for (int r = 0; r < ranks; r++) {
        int y = top + lane * r;
        fprintf(f, "<g class=\"lane\" id=\"rank%d\"><text x=\"5\" y=\"%d\">rank %d</text>\n", r, y + 17, r);
        for (int i = 0; i < cnt[r]; i++) {
            const mt_event *e = &ev[r][i];
            int inner = e->kind == MT_EV_COMM;  // drawn thinner, on top of its compute span
            fprintf(f, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"%s\"><title>%s mb %d chunk %d: %.3f ms</title></rect>\n",
                    left + sx * e->t0, y + (inner ? 8 : 2), sx * (e->t1 - e->t0) > 0.3 ? sx * (e->t1 - e->t0) : 0.3,
                    inner ? 8 : 22, KIND_COLOR[e->kind], KIND_NAME[e->kind], e->mb, e->chunk, 1e3 * (e->t1 - e->t0));
            if (!inner && e->kind <= MT_EV_BACKWARD && sx * (e->t1 - e->t0) > 14)
                fprintf(f, "<text x=\"%.2f\" y=\"%d\" fill=\"white\">%c%d</text>\n", left + sx * e->t0 + 2, y + 17,
                        e->kind == MT_EV_FORWARD ? 'F' : 'B', e->mb);
        }
        fprintf(f, "</g>\n");
    }
    int y = top + lane * ranks + 20;
    for (int k = 0; k < 5; k++)
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">%s</text>\n",
                left + 110 * k, y, KIND_COLOR[k], left + 110 * k + 16, y + 10, KIND_NAME[k]);
    fprintf(f, "</svg>\n");
}

static void write_json(FILE *f, mt_event **ev, const int *cnt, int ranks) {
    fprintf(f, "{\"traceEvents\": [\n");
    int first = 1;
    for (int r = 0; r < ranks; r++) {
        fprintf(f, "%s{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 0, \"tid\": %d, \"args\": {\"name\": \"rank %d\"}}", first ? "" : ",\n", r, r);
        first = 0;
        for (int i = 0; i < cnt[r]; i++) {
            const mt_event *e = &ev[r][i];
            fprintf(f, ",\n{\"name\": \"%s mb %d\", \"cat\": \"%s\", \"ph\": \"X\", \"pid\": 0, \"tid\": %d, \"ts\": %.3f, \"dur\": %.3f, \"args\": {\"chunk\": %d}}",
                    KIND_NAME[e->kind], e->mb, KIND_NAME[e->kind], r, 1e6 * e->t0, 1e6 * (e->t1 - e->t0), e->chunk);
        }
    }
    fprintf(f, "\n]}\n");
}

int mt_trace_write(mt_trace *t, const mt_parallel *p, const char *path, const char *title, char *err, size_t errlen) {
    int ranks = p->world_size, rank = p->world_rank;
    int *cnt = rank == 0 ? mt_calloc((size_t)ranks, sizeof(int)) : NULL;
    MPI_Gather(&t->n, 1, MPI_INT, cnt, 1, MPI_INT, 0, p->world);
    int *disp = NULL, *bytes = NULL, total = 0;
    mt_event *all = NULL;
    if (rank == 0) {
        disp = mt_calloc((size_t)ranks, sizeof(int));
        bytes = mt_calloc((size_t)ranks, sizeof(int));
        for (int r = 0; r < ranks; r++) {
            disp[r] = total * (int)sizeof(mt_event);
            bytes[r] = cnt[r] * (int)sizeof(mt_event);
            total += cnt[r];
        }
        all = mt_malloc(sizeof(mt_event) * (size_t)(total ? total : 1));
    }
    MPI_Gatherv(t->ev, t->n * (int)sizeof(mt_event), MPI_BYTE, all, bytes, disp, MPI_BYTE, 0, p->world);
    t->on = 0;
    if (rank != 0) return 0;
    mt_event **ev = mt_malloc(sizeof(mt_event *) * (size_t)ranks);
    double span = 0, idle = 0;
    for (int r = 0; r < ranks; r++) {
        ev[r] = all + disp[r] / (int)sizeof(mt_event);
        for (int i = 0; i < cnt[r]; i++) span = MT_MAX(span, ev[r][i].t1);
    }
    for (int r = 0; r < ranks; r++) idle += idle_of(ev[r], cnt[r], span) / ranks;
    int rc = 0;
    char jpath[1200];
    snprintf(jpath, sizeof jpath, "%s", path);
    char *dot = strrchr(jpath, '.');
    if (dot && !strcmp(dot, ".svg")) strcpy(dot, ".json"); else strncat(jpath, ".json", sizeof jpath - strlen(jpath) - 1);
    FILE *f = fopen(path, "w"), *g = fopen(jpath, "w");
    if (!f || !g) { snprintf(err, errlen, "--timeline %s: %s", !f ? path : jpath, strerror(errno)); rc = -1; }
    else {
        write_svg(f, ev, cnt, ranks, span, idle, title);
        write_json(g, ev, cnt, ranks);
    }
    if (f && fclose(f)) rc = -1;
    if (g && fclose(g)) rc = -1;
    if (rc && !err[0]) snprintf(err, errlen, "--timeline %s: write failed", path);
    free(ev); free(all); free(cnt); free(disp); free(bytes);
    return rc;
}
