// hf.h: Hugging Face model directories in and out (GPT2LMHeadModel and
// LlamaForCausalLM): config.json plus model.safetensors, or shards listed by
// model.safetensors.index.json. Tensor names and layouts come from the
// gpt2 / llama columns of the parameter table (include/params.h): GPT-2's
// Conv1D weights are stored (in, out) and transposed on the way; Llama's
// q/k/v and gate/up projections are the row blocks of our fused tensors.
// Files hold the real vocabulary V; rows up to the padded Vp are zero here.
#ifndef MT_HF_H
#define MT_HF_H

#include "model.h"

typedef enum { MT_HF_GPT2, MT_HF_LLAMA } mt_hf_arch;

// What a config.json says, in our terms.
typedef struct {
    mt_hf_arch arch;
    int layers, hidden, heads, kv_heads, ffn, vocab, max_pos;
    double norm_eps, rope_theta, rotary_percent;
    int tied;       // tie_word_embeddings
    int bias;       // linear layers have biases (GPT-2 always; Llama: attention_bias = mlp_bias)
} mt_hf_config;

// Whether path is a directory (an --init-from DIR rather than an llm.c file).
int mt_hf_is_dir(const char *path);

// Reads and validates DIR/config.json (rank-local). 0, or -1 with one line.
int mt_hf_read_config(const char *dir, mt_hf_config *h, char *err, size_t errlen);

// Sets the model flags from h (--init-from DIR): a flag given explicitly
// that disagrees is an error: -1 with one line naming both.
int mt_hf_apply_config(mt_config *c, const mt_hf_config *h, const char *dir, char *err, size_t errlen);

// The architecture a config exports as, or -1 with the reason in err.
int mt_hf_arch_of(const mt_config *c, char *err, size_t errlen);

// Collective: rank 0 reads the weights, checks every tensor's presence,
// shape, dtype and finiteness before any rank changes a weight, then each
// rank takes its shards. 0, or -1 with one line on every rank.
int mt_hf_load(mt_model *m, const char *dir, char *err, size_t errlen);

// Collective: rank 0 writes DIR/config.json and DIR/model.safetensors
// (fp32, each written to a temporary name and renamed). 0, or -1 with one
// line on every rank.
int mt_hf_save(const mt_model *m, const char *dir, char *err, size_t errlen);

#endif
