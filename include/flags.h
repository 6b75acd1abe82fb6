// flags.h: the command line's table (src/flags.c). One row per flag: its
// Megatron-LM name, where its value goes in mt_config, its default as one
// would type it, its group in --help and the README, and one line of
// meaning. The parser (config.c), the defaults and every program's --help
// are driven by it; adding a flag is a row there and a field in mt_config.
#ifndef MT_FLAGS_H
#define MT_FLAGS_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    MT_F_INT, MT_F_DBL, MT_F_STR, MT_F_BOOL, MT_F_U64,
    MT_F_INT2,      // two integers, two words (Megatron's nargs list of two): the field is int[2]
    MT_F_INT3,      // three integers, three words: int[3]
    MT_F_CHOICE,    // one of the names in `choices` ("a|b|c"): the int field gets its index
    MT_F_SPECIAL,   // parsed by config.c itself (--split)
    MT_F_NOTE,      // a GPU-only switch: accepted, `help` says what this build does instead
    MT_F_NOTE_ARG,  // the same with a value
    MT_F_REFUSE,    // a Megatron flag this build cannot honour: refused on sight (exit 2), `help` says why
} mt_flag_type;

typedef enum {
    MT_FG_MODEL, MT_FG_PARALLEL, MT_FG_TRAIN, MT_FG_DATA, MT_FG_FILES, MT_FG_LOG, MT_FG_GPU, MT_FG_N
} mt_flag_group;
extern const char *const mt_flag_group_names[MT_FG_N];

typedef struct {
    const char *name;
    mt_flag_type type;
    size_t off;              // offset of its field in mt_config
    const char *def;         // the default as typed on a command line; NULL: none (or derived, see help)
    const char *choices;     // MT_F_CHOICE: "name0|name1|..."
    mt_flag_group group;
    const char *help;        // one line
} mt_flag_def;

extern const mt_flag_def mt_flags[];
extern const int mt_nflags;

// --help: every flag, grouped, with its value's form, default and meaning.
void mt_flags_help(FILE *f);

#endif
