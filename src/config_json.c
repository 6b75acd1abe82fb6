// config_json.c: the run's configuration as one JSON line, the first record
// of --metrics-file, so a curve can be reproduced from the file alone.
// Driven by the flag table (flags.h): every flag's effective value, and the
// flags the run was given (command line and --config files) as an argument
// list that reproduces it.
#include "config.h"
#include "flags.h"

#include <inttypes.h>
#include <string.h>

// s as a JSON string.
static void put_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        if (*q == '"' || *q == '\\') fprintf(f, "\\%c", *q);
        else if (*q < 0x20) fprintf(f, "\\u%04x", *q);
        else fputc(*q, f);
    }
    fputc('"', f);
}

// The value of flag d under c as typed on a command line (NULL: none).
static const char *flag_value(const mt_config *c, const mt_flag_def *d, char *buf, size_t len) {
    const char *field = (const char *)c + d->off;
    switch (d->type) {
    case MT_F_INT: snprintf(buf, len, "%d", *(const int *)field); return buf;
    case MT_F_DBL: snprintf(buf, len, "%.17g", *(const double *)field); return buf;
    case MT_F_U64: snprintf(buf, len, "%" PRIu64, *(const uint64_t *)field); return buf;
    case MT_F_STR: return field;
    case MT_F_SPECIAL: snprintf(buf, len, "%d,%d,%d", c->split[0], c->split[1], c->split[2]); return buf;
    case MT_F_INT2: snprintf(buf, len, "[%d, %d]", ((const int *)field)[0], ((const int *)field)[1]); return buf;  // JSON
    case MT_F_INT3:
        snprintf(buf, len, "[%d, %d, %d]", ((const int *)field)[0], ((const int *)field)[1], ((const int *)field)[2]);
        return buf;
    case MT_F_CHOICE: {  // the index'th name of "a|b|c"
        const char *s = d->choices;
        for (int i = *(const int *)field; i > 0 && s; i--) s = strchr(s, '|'), s = s ? s + 1 : NULL;
        size_t n = s ? strcspn(s, "|") : 0;
        snprintf(buf, len, "%.*s", (int)n, s ? s : "");
        return buf;
    }
    default: return NULL;  // booleans and notes take no value
    }
}

static int was_set(const mt_config *c, int k) { return (int)(c->set_mask[k / 64] >> (k % 64) & 1); }

void mt_config_write_json(const mt_config *c, int world, int start_iteration, FILE *f) {
    char buf[64];
    fprintf(f, "{\"config\": {");
    int first = 1;
    for (int k = 0; k < mt_nflags; k++) {
        const mt_flag_def *d = &mt_flags[k];
        if (d->type == MT_F_NOTE || d->type == MT_F_NOTE_ARG || d->type == MT_F_REFUSE) continue;
        fprintf(f, "%s\"%s\": ", first ? "" : ", ", d->name + 2);
        first = 0;
        if (d->type == MT_F_BOOL) fprintf(f, "%s", *(const int *)((const char *)c + d->off) ? "true" : "false");
        else if (d->type == MT_F_STR || d->type == MT_F_CHOICE || d->type == MT_F_SPECIAL) put_string(f, flag_value(c, d, buf, sizeof buf));
        else fprintf(f, "%s", flag_value(c, d, buf, sizeof buf));
    }
    fprintf(f, "}, \"derived\": {\"padded_vocab\": %d, \"file_vocab\": %d, \"data_parallel\": %d, \"micro_batches\": %d}",
            c->padded_vocab, c->file_vocab, c->dp, c->num_micro_batches);
    fprintf(f, ", \"ranks\": %d, \"precision\": \"%s\", \"start_iteration\": %d, \"argv\": [", world, MT_PRECISION_NAME,
            start_iteration);
    first = 1;
    for (int k = 0; k < mt_nflags; k++) {
        const mt_flag_def *d = &mt_flags[k];
        if (!was_set(c, k)) continue;
        fprintf(f, "%s", first ? "" : ", ");
        first = 0;
        put_string(f, d->name);
        if (d->type == MT_F_INT2 || d->type == MT_F_INT3) {  // one word per integer on a command line
            const int *x = (const int *)((const char *)c + d->off);
            for (int i = 0; i < (d->type == MT_F_INT2 ? 2 : 3); i++) snprintf(buf, sizeof buf, "%d", x[i]), fprintf(f, ", "), put_string(f, buf);
            continue;
        }
        const char *v = flag_value(c, d, buf, sizeof buf);
        if (v) fprintf(f, ", "), put_string(f, v);
    }
    fprintf(f, "]}\n");
}
