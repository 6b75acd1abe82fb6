// trace.c: timeline events, gathered to rank 0 and drawn (trace.h). Plain
// MPI on the world communicator: this moves a log, not model data, and is
// not counted.
#include "trace.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "common.h"
#include "outfile.h"
#include "outputs.h"

void mt_trace_start(mt_trace *t, const mt_parallel *p) {
    t->n = 0;
    t->on = 1;
    MPI_Barrier(p->world);
    t->origin = mt_now();
}

static void push(mt_trace *t, mt_event e) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 256;
        t->ev = realloc(t->ev, sizeof(mt_event) * (size_t)t->cap);
        if (!t->ev) mt_fail_local(MT_EXIT_FAIL, "out of memory recording the timeline");
    }
    e.t0 -= t->origin;
    e.t1 -= t->origin;
    t->ev[t->n++] = e;
}

void mt_trace_add(mt_trace *t, int kind, int chunk, int mb, double t0, double t1) {
    if (t && t->on) push(t, (mt_event){kind, chunk, mb, -1, -1, 0, t0, t1});
}

void mt_trace_add_comm(mt_trace *t, int kind, int group, int coll, double bytes, double t0, double t1) {
    if (t && t->on) push(t, (mt_event){kind, -1, -1, group, coll, bytes, t0, t1});
}

void mt_trace_free(mt_trace *t) {
    free(t->ev);
    memset(t, 0, sizeof *t);
}

// ---- what one rank's lane says ---------------------------------------------------

static const char *const KIND_NAME[MT_EV_KINDS] = {"forward", "backward", "comm", "idle", "optimizer"};
// Shades per model chunk, so interleaved virtual stages stand apart.
static const char *const FWD_COLOR[4] = {"#4e79a7", "#a0cbe8", "#1f3f66", "#76a5d8"};
static const char *const BWD_COLOR[4] = {"#59a14f", "#8cd17d", "#2f6b2a", "#b6e3a8"};
static const char *const IDLE_COLOR = "#e15759", *const OPT_COLOR = "#76b7b2", *const MEM_COLOR = "#7f3c8d";

static const char *group_color(int g) {
    switch (g) {
    case MT_GROUP_TP: return "#f28e2b";
    case MT_GROUP_DP: return "#9c755f";
    case MT_GROUP_PP: return "#edc948";
    case MT_GROUP_EMBD: return "#ff9da7";
    case MT_GROUP_MP: return "#555555";
    default: return "#f28e2b";
    }
}

static const char *color_of(const mt_event *e) {
    switch (e->kind) {
    case MT_EV_FORWARD: return FWD_COLOR[e->chunk & 3];
    case MT_EV_BACKWARD: return BWD_COLOR[e->chunk & 3];
    case MT_EV_COMM: return group_color(e->group);
    case MT_EV_IDLE: return IDLE_COLOR;
    default: return OPT_COLOR;
    }
}

static const char *group_name(int g) { return g >= 0 && g < MT_GROUP_N ? mt_group_names[g] : "?"; }
static const char *coll_name(int c) { return c >= 0 && c < MT_COLL_N ? mt_coll_names[c] : "?"; }

// One line saying what an event is (the SVG tooltip, the Chrome-trace name).
static void describe(const mt_event *e, int nchunks, char *out, size_t len) {
    double ms = 1e3 * (e->t1 - e->t0);
    switch (e->kind) {
    case MT_EV_FORWARD: case MT_EV_BACKWARD:
        if (nchunks > 1) snprintf(out, len, "%s, micro-batch %d, chunk %d: %.3f ms", KIND_NAME[e->kind], e->mb, e->chunk, ms);
        else snprintf(out, len, "%s, micro-batch %d: %.3f ms", KIND_NAME[e->kind], e->mb, ms);
        break;
    case MT_EV_COMM:
        snprintf(out, len, "%s %s, %.0f bytes: %.3f ms (from the call to its return: includes waiting for the group's slowest rank)",
                 group_name(e->group), coll_name(e->coll), e->bytes, ms);
        break;
    case MT_EV_IDLE:
        snprintf(out, len, "idle: %s %s of %.0f bytes, waiting for the neighbouring stage: %.3f ms", group_name(e->group),
                 coll_name(e->coll), e->bytes, ms);
        break;
    default: snprintf(out, len, "optimizer step: %.3f ms", ms);
    }
}

// Per rank: time blocked in pipeline receives over the forward-backward
// time (the schedule's span: its last compute or pipeline event), the
// aggregate --log-pipeline prints.
static double idle_fraction(const mt_event *e, int n) {
    double idle = 0, end = 0;
    for (int i = 0; i < n; i++) {
        if (e[i].kind == MT_EV_IDLE) idle += e[i].t1 - e[i].t0;
        if (e[i].kind <= MT_EV_BACKWARD || e[i].kind == MT_EV_IDLE || (e[i].kind == MT_EV_COMM && e[i].group == MT_GROUP_PP))
            end = fmax(end, e[i].t1);
    }
    return end > 0 ? idle / end : 0;
}

typedef struct { double t, delta; } mt_mem_step;

static int by_time(const void *a, const void *b) {
    const mt_mem_step *x = a, *y = b;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    return x->delta < y->delta ? -1 : x->delta > y->delta;  // a release before an acquire at the same instant
}

// Activations held over time: a micro-batch's set on a chunk from the start
// of its forward to the end of its backward. Returns the steps (caller frees).
static mt_mem_step *memory_steps(const mt_event *e, int n, double act, int *ns, double *peak) {
    mt_mem_step *s = mt_malloc(sizeof *s * (size_t)(2 * n + 1));
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (e[i].kind == MT_EV_FORWARD) s[k++] = (mt_mem_step){e[i].t0, act};
        if (e[i].kind == MT_EV_BACKWARD) s[k++] = (mt_mem_step){e[i].t1, -act};
    }
    qsort(s, (size_t)k, sizeof *s, by_time);
    double cur = 0;
    *peak = 0;
    for (int i = 0; i < k; i++) cur += s[i].delta, *peak = fmax(*peak, cur);
    *ns = k;
    return s;
}

// ---- SVG ---------------------------------------------------------------------------

typedef struct {
    mt_event **ev;
    const int *cnt;
    const double *act;   // per rank
    int ranks, nchunks;
    double span, formula;
    const char *title;
    char formula_text[160];
} mt_tl;

enum { LEFT = 110, WIDTH = 1000, TOP = 90, LANE = 26, MEMH = 16, GAP = 8, ROW = LANE + MEMH + GAP };

static double nice_step(double span_ms) {
    double raw = span_ms / 8, p = pow(10, floor(log10(raw > 0 ? raw : 1)));
    return raw <= p ? p : raw <= 2 * p ? 2 * p : raw <= 5 * p ? 5 * p : 10 * p;
}

static void svg_axis(FILE *f, const mt_tl *tl, double sx) {
    double span_ms = 1e3 * tl->span, step = nice_step(span_ms);
    int bottom = TOP + ROW * tl->ranks;
    fprintf(f, "<g class=\"axis\"><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", LEFT, TOP - 6, LEFT + WIDTH, TOP - 6);
    for (double t = 0; t <= span_ms + 1e-9; t += step) {
        double x = LEFT + sx * t / 1e3;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/><line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" "
                "y2=\"%d\" stroke=\"#333\"/><text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g%s</text>\n",
                x, TOP - 6, x, bottom, x, TOP - 10, x, TOP - 6, x, TOP - 13, t, t == 0 ? " ms" : "");
    }
    fprintf(f, "</g>\n");
}

static void svg_lane(FILE *f, const mt_tl *tl, int r, double sx, double mem_max) {
    int y = TOP + ROW * r, n = tl->cnt[r];
    const mt_event *ev = tl->ev[r];
    char tip[320];
    fprintf(f, "<g class=\"lane\" id=\"rank%d\"><text x=\"5\" y=\"%d\">rank %d</text><text x=\"5\" y=\"%d\" font-size=\"9\">"
            "idle %.3f</text>\n", r, y + 12, r, y + 23, idle_fraction(ev, n));
    // Compute spans, then collectives and waits on top, then the labels.
    for (int pass = 0; pass < 3; pass++)
        for (int i = 0; i < n; i++) {
            const mt_event *e = &ev[i];
            int thin = e->kind == MT_EV_COMM || e->kind == MT_EV_IDLE;
            if (pass < 2 ? thin != pass : thin) continue;
            // Collectives at least 2 px wide, or TP's sub-millisecond calls vanish.
            double w = fmax(sx * (e->t1 - e->t0), thin ? 2.0 : 0.5);
            describe(e, tl->nchunks, tip, sizeof tip);
            if (pass < 2) fprintf(f, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"%s\"><title>%s</title></rect>\n",
                    LEFT + sx * e->t0, y + (e->kind == MT_EV_COMM ? 9 : 2), w, e->kind == MT_EV_COMM ? 9 : LANE - 4,
                    color_of(e), tip);
            if (pass == 2 && e->kind <= MT_EV_BACKWARD && w > (tl->nchunks > 1 ? 26 : 16)) {
                char lab[32];
                if (tl->nchunks > 1) snprintf(lab, sizeof lab, "%c%d.%d", e->kind == MT_EV_FORWARD ? 'F' : 'B', e->mb, e->chunk);
                else snprintf(lab, sizeof lab, "%c%d", e->kind == MT_EV_FORWARD ? 'F' : 'B', e->mb);
                fprintf(f, "<text x=\"%.2f\" y=\"%d\" fill=\"%s\">%s</text>\n", LEFT + sx * e->t0 + 2, y + 7 + LANE / 2,
                        e->chunk & 1 ? "black" : "white", lab);
            }
        }
    // The memory lane: a step line of the activations held.
    int ns;
    double peak;
    mt_mem_step *s = memory_steps(ev, n, tl->act[r], &ns, &peak);
    int base = y + LANE + MEMH - 2;
    double cur = 0, x = LEFT, sy = mem_max > 0 ? (MEMH - 3) / mem_max : 0;
    fprintf(f, "<text x=\"5\" y=\"%d\" font-size=\"9\" fill=\"%s\">acts &#8804; %.2f MB</text>\n", base, MEM_COLOR, peak / 1e6);
    fprintf(f, "<path class=\"memory\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" d=\"M%d %d", MEM_COLOR, LEFT, base);
    for (int i = 0; i < ns; i++) {
        double nx = LEFT + sx * s[i].t;
        fprintf(f, " L%.2f %.2f", nx, base - sy * cur);
        cur += s[i].delta;
        fprintf(f, " L%.2f %.2f", nx, base - sy * cur);
        x = nx;
    }
    fprintf(f, " L%d %.2f\"><title>rank %d: activations held (a micro-batch's on a chunk: %.0f bytes), peak %.0f bytes</title></path>\n",
            LEFT + WIDTH, base - sy * cur, r, tl->act[r], peak);
    (void)x;
    free(s);
    fprintf(f, "</g>\n");
}

static void svg_legend(FILE *f, const mt_tl *tl, int y) {
    typedef struct { const char *color, *name; } item;
    item items[16];
    int k = 0;
    char names[8][32];
    for (int c = 0; c < (tl->nchunks > 1 ? MT_MIN(tl->nchunks, 4) : 1); c++) {
        snprintf(names[2 * c], 32, tl->nchunks > 1 ? "forward chunk %d" : "forward", c);
        snprintf(names[2 * c + 1], 32, tl->nchunks > 1 ? "backward chunk %d" : "backward", c);
        items[k++] = (item){FWD_COLOR[c], names[2 * c]};
        items[k++] = (item){BWD_COLOR[c], names[2 * c + 1]};
    }
    items[k++] = (item){group_color(MT_GROUP_TP), "tp collective"};
    items[k++] = (item){group_color(MT_GROUP_DP), "dp collective"};
    items[k++] = (item){group_color(MT_GROUP_PP), "pp send"};
    items[k++] = (item){group_color(MT_GROUP_MP), "mp (norm)"};
    items[k++] = (item){group_color(MT_GROUP_EMBD), "embd"};
    items[k++] = (item){IDLE_COLOR, "idle (pp recv)"};
    items[k++] = (item){OPT_COLOR, "optimizer"};
    items[k++] = (item){MEM_COLOR, "activations held"};
    for (int i = 0; i < k; i++) {
        int x = LEFT + 125 * (i % 8), yy = y + 18 * (i / 8);
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">%s</text>\n", x, yy,
                items[i].color, x + 16, yy + 10, items[i].name);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"10\">A collective's bar runs from its call to its return, so it includes waiting "
            "for the group's slowest rank: the dp and mp bars at the end wait for the last stage's backward.</text>\n",
            LEFT, y + 18 * ((k + 7) / 8) + 8);
}

static void write_svg(FILE *f, const mt_tl *tl) {
    double sx = WIDTH / (tl->span > 0 ? tl->span : 1), mem_max = 0, sum = 0, lo = 1, hi = 0;
    for (int r = 0; r < tl->ranks; r++) {
        int ns;
        double peak, fr = idle_fraction(tl->ev[r], tl->cnt[r]);
        free(memory_steps(tl->ev[r], tl->cnt[r], tl->act[r], &ns, &peak));
        mem_max = fmax(mem_max, peak);
        sum += fr, lo = fmin(lo, fr), hi = fmax(hi, fr);
    }
    int height = TOP + ROW * tl->ranks + 80;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"11\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", LEFT + WIDTH + 20, height);
    fprintf(f, "<title>%s</title>\n<text x=\"10\" y=\"18\" font-size=\"14\">%s, span %.1f ms</text>\n", tl->title, tl->title, 1e3 * tl->span);
    fprintf(f, "<text x=\"10\" y=\"36\" font-size=\"12\">pipeline idle fraction: measured %.3f (mean over ranks, %.3f to %.3f), "
            "formula %s</text>\n<text x=\"10\" y=\"52\" font-size=\"10\">measured = time blocked in pipeline receives / "
            "forward-backward time, per rank as --log-pipeline prints it</text>\n", sum / tl->ranks, lo, hi, tl->formula_text);
    svg_axis(f, tl, sx);
    for (int r = 0; r < tl->ranks; r++) svg_lane(f, tl, r, sx, mem_max);
    svg_legend(f, tl, TOP + ROW * tl->ranks + 8);
    fprintf(f, "</svg>\n");
}

// ---- Chrome trace -------------------------------------------------------------------

static void write_json(FILE *f, const mt_tl *tl) {
    fprintf(f, "{\"traceEvents\": [\n");
    char name[320];
    for (int r = 0; r < tl->ranks; r++) {
        fprintf(f, "%s{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 0, \"tid\": %d, \"args\": {\"name\": \"rank %d\"}}",
                r ? ",\n" : "", r, r);
        for (int i = 0; i < tl->cnt[r]; i++) {
            const mt_event *e = &tl->ev[r][i];
            double ts = 1e6 * e->t0, dur = 1e6 * (e->t1 - e->t0);
            if (e->kind == MT_EV_FORWARD || e->kind == MT_EV_BACKWARD) {
                snprintf(name, sizeof name, "%c micro-batch %d chunk %d", e->kind == MT_EV_FORWARD ? 'F' : 'B', e->mb, e->chunk);
                fprintf(f, ",\n{\"name\": \"%s\", \"cat\": \"%s\", \"ph\": \"X\", \"pid\": 0, \"tid\": %d, \"ts\": %.3f, \"dur\": %.3f, "
                        "\"args\": {\"micro_batch\": %d, \"chunk\": %d}}", name, KIND_NAME[e->kind], r, ts, dur, e->mb, e->chunk);
            } else if (e->kind == MT_EV_COMM || e->kind == MT_EV_IDLE) {
                snprintf(name, sizeof name, "%s%s %s", e->kind == MT_EV_IDLE ? "idle: " : "", group_name(e->group), coll_name(e->coll));
                fprintf(f, ",\n{\"name\": \"%s\", \"cat\": \"%s\", \"ph\": \"X\", \"pid\": 0, \"tid\": %d, \"ts\": %.3f, \"dur\": %.3f, "
                        "\"args\": {\"group\": \"%s\", \"collective\": \"%s\", \"bytes\": %.0f}}", name, KIND_NAME[e->kind], r, ts,
                        dur, group_name(e->group), coll_name(e->coll), e->bytes);
            } else {
                fprintf(f, ",\n{\"name\": \"optimizer\", \"cat\": \"optimizer\", \"ph\": \"X\", \"pid\": 0, \"tid\": %d, \"ts\": %.3f, "
                        "\"dur\": %.3f}", r, ts, dur);
            }
        }
        int ns;
        double peak, cur = 0;
        mt_mem_step *s = memory_steps(tl->ev[r], tl->cnt[r], tl->act[r], &ns, &peak);
        for (int i = 0; i < ns; i++) {
            cur += s[i].delta;
            fprintf(f, ",\n{\"name\": \"activations rank %d\", \"ph\": \"C\", \"pid\": 0, \"tid\": %d, \"ts\": %.3f, \"args\": "
                    "{\"bytes\": %.0f}}", r, r, 1e6 * s[i].t, cur);
        }
        free(s);
    }
    fprintf(f, "\n]}\n");
}

// ---- gather and write ----------------------------------------------------------------

int mt_trace_write(mt_trace *t, const mt_parallel *p, const mt_config *c, const char *path, const char *title, char *err,
                   size_t errlen) {
    int ranks = p->world_size, rank = p->world_rank;
    int *cnt = rank == 0 ? mt_calloc((size_t)ranks, sizeof(int)) : NULL;
    double *act = rank == 0 ? mt_calloc((size_t)ranks, sizeof(double)) : NULL;
    MPI_Gather(&t->n, 1, MPI_INT, cnt, 1, MPI_INT, 0, p->world);
    MPI_Gather(&t->act_bytes, 1, MPI_DOUBLE, act, 1, MPI_DOUBLE, 0, p->world);
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
    mt_tl tl = {mt_malloc(sizeof(mt_event *) * (size_t)ranks), cnt, act, ranks, 1, 0, 0, title, ""};
    for (int r = 0; r < ranks; r++) {
        tl.ev[r] = all + disp[r] / (int)sizeof(mt_event);
        for (int i = 0; i < cnt[r]; i++) tl.span = MT_MAX(tl.span, tl.ev[r][i].t1);
    }
    double v = c->layers_per_virtual_stage ? (double)c->num_layers / c->pp / c->layers_per_virtual_stage : 1;
    double M = c->num_micro_batches, pp = c->pp;
    tl.nchunks = (int)v;
    tl.formula = (pp - 1) / (v * M + pp - 1);
    snprintf(tl.formula_text, sizeof tl.formula_text, "(p-1)/(vM+p-1) = %.3f (p %d, v %d, M %d)", tl.formula, c->pp, (int)v,
             c->num_micro_batches);
    int rc = 0;
    char jpath[1200];
    mt_outputs_timeline_json(path, jpath, sizeof jpath);  // the name the output checks vetted
    // Both files through outfile.h: written to temporaries, checked, and
    // renamed into place only when both are complete (a failure leaves the
    // previous pair, never an empty file).
    mt_outfile f, g;
    char e[1300] = "";
    rc = mt_outfile_open(&f, path, e, sizeof e);
    if (!rc && (rc = mt_outfile_open(&g, jpath, e, sizeof e))) mt_outfile_abort(&f);
    if (!rc) {
        write_svg(f.fp, &tl);
        write_json(g.fp, &tl);
        if ((rc = mt_outfile_finish(&f, e, sizeof e))) mt_outfile_abort(&g);
        else if ((rc = mt_outfile_finish(&g, e, sizeof e))) mt_outfile_abort(&f);
        else if (!(rc = mt_outfile_publish(&f, e, sizeof e))) rc = mt_outfile_publish(&g, e, sizeof e);
        else mt_outfile_abort(&g);
    }
    if (rc) snprintf(err, errlen, "--timeline %s", e);
    free(tl.ev); free(all); free(cnt); free(act); free(disp); free(bytes);
    return rc;
}
