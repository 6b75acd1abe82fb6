// json.h: a small, strict JSON reader for the Hugging Face files we read
// (config.json, model.safetensors.index.json, a tokenizer's tokenizer.json).
// It parses a whole document into a tree: objects (keys in file order),
// arrays, strings, numbers, true/false/null. Strict: one value, nothing
// after it but white space, depth at most 64, strings valid UTF-8, numbers
// as RFC 8259 writes them. A string may hold an escaped NUL (\u0000), so
// it carries its length. No globals.
#ifndef MT_JSON_H
#define MT_JSON_H

#include <stddef.h>

typedef enum { MT_JSON_NULL, MT_JSON_BOOL, MT_JSON_NUMBER, MT_JSON_STRING, MT_JSON_ARRAY, MT_JSON_OBJECT } mt_json_type;

typedef struct mt_json mt_json;
struct mt_json {
    mt_json_type type;
    double number;        // NUMBER; BOOL: 0 or 1
    char *string;         // STRING, NUL-terminated
    size_t length;        // STRING: its bytes (an escaped NUL may sit inside)
    int n;                // ARRAY / OBJECT: members
    mt_json *items;       // ARRAY / OBJECT: the values
    char **keys;          // OBJECT: the keys (unique)
};

// Parses len bytes; NULL with a one-line reason ("line L: ...") in err.
mt_json *mt_json_parse(const char *text, size_t len, char *err, size_t errlen);
void mt_json_free(mt_json *j);   // NULL is fine

// The member `key` of an object, or NULL (also when j is not an object).
const mt_json *mt_json_get(const mt_json *j, const char *key);

#endif
