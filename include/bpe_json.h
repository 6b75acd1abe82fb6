// bpe_json.h: the JSON reader of the BPE tokenizer (src/bpe_json.c): a
// document as a tree. Objects keep their keys in file order.
#ifndef MT_BPE_JSON_H
#define MT_BPE_JSON_H

#include <stddef.h>

typedef enum { MT_J_NULL, MT_J_BOOL, MT_J_NUM, MT_J_STR, MT_J_ARR, MT_J_OBJ } mt_json_type;

typedef struct mt_json {
    mt_json_type type;
    double num;             // numbers; booleans as 0/1
    char *str;              // strings, NUL-terminated UTF-8 (may hold NUL: use len)
    size_t len;
    struct mt_json *items;  // arrays and objects: n values
    char **keys;            // objects: n keys
    int n;
} mt_json;

// 0, or -1 with "JSON: what at byte N" in err (root then holds nothing to free... call mt_json_free anyway).
int mt_json_parse(const char *text, size_t len, mt_json *root, char *err, size_t errlen);
void mt_json_free(mt_json *v);
// The value of `key` in an object, or NULL.
const mt_json *mt_json_get(const mt_json *obj, const char *key);

#endif
