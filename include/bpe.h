// bpe.h: byte-level BPE tokenization from a Hugging Face tokenizer.json (the
// GPT-2 and Llama-3 kind), encoding exactly as that tokenizer does:
//   1. added tokens (e.g. <|endoftext|>) found in the text are split out
//      first and become their ids (longest match, leftmost);
//   2. the rest is pre-tokenized by the tokenizer's pattern, GPT-2's
//        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//      (pre_tokenizer ByteLevel with use_regex) or Llama-3's
//        (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//        ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//      (a Split with that regex, then ByteLevel without one), hand-written
//      here with \p{L}, \p{N} from src/unicode_tab.c;
//   3. each piece's bytes map to GPT-2's printable byte alphabet, and the
//      merges apply lowest rank first, every occurrence of the pair left to
//      right (GPT-2's bpe()); with "ignore_merges" (Llama 3) a piece that is
//      itself in the vocabulary is taken whole.
// Decoding maps ids back to bytes (added tokens to their text). Anything
// else in tokenizer.json (normalizers, other models, byte_fallback,
// add_prefix_space) is refused with one line rather than approximated.
// Only libc: tools/prepare_data builds from its own sources.
#ifndef MT_BPE_H
#define MT_BPE_H

#include <stddef.h>
#include <stdint.h>

typedef struct mt_bpe mt_bpe;

// Loads DIR/tokenizer.json (or the file itself). NULL with one line in err.
mt_bpe *mt_bpe_load(const char *path, char *err, size_t errlen);
// The file mt_bpe_load reads for path (so a caller can keep outputs off it).
void mt_bpe_file(const char *path, char *file, size_t filelen);
void mt_bpe_free(mt_bpe *t);

// Ids run from 0 to vocab_size - 1 (the largest id + 1, added tokens included).
int mt_bpe_vocab_size(const mt_bpe *t);
// "gpt2" or "llama3": the pre-tokenizer in use.
const char *mt_bpe_kind(const mt_bpe *t);

// Appends the ids of text[0, len) to *ids (grown as needed; *n in, *n out).
// Returns 0, or -1 with err (text that is not UTF-8, out of memory).
int mt_bpe_encode(const mt_bpe *t, const char *text, size_t len, uint32_t **ids, size_t *n, size_t *cap, char *err,
                  size_t errlen);

// The bytes of token `id` (not NUL-terminated); NULL for an id outside the
// vocabulary.
const char *mt_bpe_decode(const mt_bpe *t, uint32_t id, size_t *len);

#endif
