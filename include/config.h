// config.h: the command line (Megatron-LM's flag names) and its validation.
#ifndef MT_CONFIG_H
#define MT_CONFIG_H

#include "common.h"

// The largest --config file read (a config is a few hundred bytes; /dev/zero
// or a stray binary file ends at this bound with one line).
#define MT_CONFIG_MAX_BYTES ((size_t)1 << 20)
// --max-position-embeddings' bound (Hugging Face's config.json allows the same).
#define MT_MAX_POSITIONS (1 << 20)

typedef enum { MT_LR_CONSTANT, MT_LR_LINEAR, MT_LR_COSINE, MT_LR_ISQRT, MT_LR_WSD } mt_lr_style;
// WSD's annealing phase (--lr-wsd-decay-style), and the weight decay's
// schedule (--weight-decay-incr-style), in Megatron's choice order.
typedef enum { MT_WSD_EXPONENTIAL, MT_WSD_LINEAR, MT_WSD_COSINE, MT_WSD_MINUS_SQRT } mt_wsd_style;
typedef enum { MT_WD_CONSTANT, MT_WD_LINEAR, MT_WD_COSINE } mt_wd_style;
typedef enum { MT_ORDER_SHUFFLE, MT_ORDER_SEQUENTIAL } mt_data_order;
typedef enum { MT_SCHED_AFAB, MT_SCHED_1F1B, MT_SCHED_INTERLEAVED } mt_schedule_kind;
typedef enum { MT_RECOMPUTE_NONE, MT_RECOMPUTE_SELECTIVE, MT_RECOMPUTE_FULL } mt_recompute;
typedef enum { MT_RECOMPUTE_UNIFORM, MT_RECOMPUTE_BLOCK } mt_recompute_method;
typedef enum { MT_NORM_LAYERNORM, MT_NORM_RMSNORM } mt_normalization;
typedef enum { MT_CP_P2P, MT_CP_A2A, MT_CP_ALLGATHER, MT_CP_A2A_P2P } mt_cp_comm;
typedef enum { MT_POS_LEARNED, MT_POS_ROPE } mt_position_type;
typedef enum { MT_FAULT_NONE, MT_FAULT_ALLOC, MT_FAULT_WRITE, MT_FAULT_CHECK } mt_fault;

typedef struct {
    // model
    int num_layers, hidden_size, num_heads, seq_length, max_position_embeddings;
    int vocab_size;            // real vocabulary V
    int vocab_divisor;         // --make-vocab-size-divisible-by
    int padded_vocab;          // Vp in memory, derived as Megatron does: a multiple of divisor x TP
    int file_vocab;            // Vp at TP 1 (a multiple of the divisor): the rows files store
    double init_method_std;
    double hidden_dropout, attention_dropout;
    // the block family (Megatron's flags; every zero value is GPT-2's choice)
    mt_normalization normalization;        // --normalization LayerNorm|RMSNorm
    double norm_epsilon;
    mt_position_type position_embedding;   // --position-embedding-type learned_absolute|rope
    double rotary_base, rotary_percent;
    int swiglu;                            // down(silu(gate x) * up x)
    int ffn_hidden_size;                   // derived when not given (Megatron's rule)
    int group_query_attention;
    int num_query_groups;                  // KV heads; derived: = heads without GQA
    int untie_embeddings;                  // a separate LM head
    int disable_bias_linear;               // no bias in any linear layer
    // parallelism
    int tp, cp, pp, dp;        // dp derived from the world size
    mt_cp_comm cp_comm;        // --cp-comm-type: how attention crosses the CP split
    int hcp_sizes[2];          // a2a+p2p: the all-to-all level's size and the ring's (0 0: not given)
    int sequence_parallel;
    int layers_per_virtual_stage;  // 0: no interleaving
    int use_distributed_optimizer;
    // Communication overlap (Megatron's flags): gradients reduced in buckets
    // of ddp_bucket_size elements (derived when not given), posted while
    // backward runs; the distributed optimizer's all-gather posted after the
    // step and waited for by the next forward. Neither changes a bit.
    int overlap_grad_reduce, overlap_param_gather, ddp_bucket_size;
    // --overlap-p2p-communication: pipeline receives posted as soon as the
    // previous receive of their direction has landed, waited for only when
    // the data is used (schedule.c). Same bits.
    int overlap_p2p_comm;
    // Megatron's default under TP: the column-parallel backward's input
    // gradient is summed while its weight-gradient GEMM runs (and under SP
    // the input is all-gathered while the input-gradient GEMM runs);
    // --no-async-tensor-model-parallel-allreduce waits at once. Same bits.
    int no_async_tp_allreduce;
    mt_schedule_kind schedule;
    // activation recomputation (Korthikanti et al. 2022)
    mt_recompute recompute;            // --recompute-granularity
    mt_recompute_method recompute_method;
    int recompute_activations;         // --recompute-activations: selective (Megatron's shorthand)
    int use_rotary_legacy;             // --use-rotary-position-embeddings: rope
    int kv_channels;                   // --kv-channels: must be hidden / heads
    int exit_duration_mins;            // --exit-duration-in-mins (given: exit_duration_set)
    int exit_duration_set;
    int log_params_norm;               // --log-params-norm
    int recompute_num_layers;          // uniform: layers per group; block: layers recomputed per chunk
    // batch and optimizer
    int micro_batch_size, global_batch_size, num_micro_batches;  // M derived
    int train_iters;
    double lr, min_lr;
    mt_lr_style lr_style;
    int lr_warmup_iters, lr_decay_iters;
    // --lr-warmup-fraction F: the warm-up is F x the decay length (in
    // samples, as the whole schedule is counted: mt_lr_at);
    // --lr-warmup-init: the warm-up's first LR (Megatron's init_lr).
    double lr_warmup_fraction, lr_warmup_init;
    // --lr-decay-style WSD: constant LR, then an annealing phase of
    // --lr-wsd-decay-iters (-samples) before the decay's end.
    mt_wsd_style lr_wsd_style;
    int lr_wsd_decay_iters;
    uint64_t lr_wsd_decay_samples;
    // Megatron's weight decay schedule: from start to end over the run.
    // --decoupled-lr, --decoupled-min-lr: the word embeddings' and output
    // layer's own peak and floor (set: derived, the flag was given).
    double decoupled_lr, decoupled_min_lr;
    int decoupled_lr_set;
    mt_wd_style wd_incr_style;
    double start_weight_decay, end_weight_decay;
    // Sample-based training (--train-samples): train_iters derived from it,
    // the LR schedule counted in samples; --rampup-batch-size START
    // INCREMENT SAMPLES (0 0 0: none) grows the global batch as Megatron's
    // RampupBatchsizeNumMicroBatchesCalculator does (mt_batch_at).
    uint64_t train_samples, lr_warmup_samples, lr_decay_samples;
    int rampup[3];
    double weight_decay, adam_beta1, adam_beta2, adam_eps, clip_grad;
    int weight_decay_all;      // --weight-decay-all: decay every tensor (llm.c), not only 2-D weights (Megatron)
    uint64_t seed;
    // data
    char data_path[1024], train_data_path[1024], valid_data_path[1024];
    int split[3];
    mt_data_order data_order;
    // I/O and logging
    char init_from[1024], export_llmc[1024], metrics_file[1024], dump_params[1024];
    char save[1024], load[1024], dump_dir[1024], timeline[1024], export_hf[1024];
    int finetune, no_load_optim;  // --load reads the weights alone (and, --finetune, restarts at iteration 0)
    char pretrained[1024];        // --pretrained-checkpoint: fine-tune from it while --load holds no checkpoint
    int dump_step;             // iteration whose parameters and gradients go to dump_dir
    int save_interval, eval_interval, eval_iters, log_interval;
    int exit_interval;         // stop (after saving) when the iteration is a multiple
    int log_comm, log_memory, log_layout, log_pipeline;
    int log_llmc_steps;        // --log-llmc-steps: llm.c's "step k: train loss" line too
    int dry_run;
    int verbose;               // --verbose: more detail in the --log-* reports
    int tf32;                  // --tf32: CUDA build only: cuBLAS TF32 tensor-core math for the fp32 products (opt-in)
    int bf16;                  // --bf16: bf16 mixed precision, emulated (docs/design.md, "bf16")
    int no_bias_gelu_fusion;   // --no-bias-gelu-fusion: GELU (+ bias gradient) as the op chain, not one sweep (same bits)
    int no_bias_dropout_fusion; // --no-bias-dropout-fusion: bias + dropout + residual as the op chain (same bits)
    int no_grad_norm_fusion;   // --no-grad-norm-fusion: the gradient norm's sum in one pass after backward (same bits)
    int flash_attn;            // --use-flash-attn: the blocked attention kernel (no s x s matrix kept)               // check flags and layout, print them, allocate nothing
    uint64_t set_mask[4];      // bit k: FLAGS[k] was given (config file or argv)
    // Negative controls for the test suite, set only by the environment
    // variable MT_INJECT_BUG (comma-separated names, see README "Tests"):
    // each plants a bug the layout tests must catch.
    int bug_no_sp_grad_sync;   // "sp-grad-sync": drop the TP sum of SP-partial grads
    int bug_rank_dropout;      // "rank-dropout": seed dropout per rank (Megatron style)
    int bug_loss_per_stage;    // "loss-per-stage": divide by M again on every stage
    int bug_norm_double;       // "norm-double": count TP-replicated grads per rank
    int bug_die_in_save;       // "die-in-save": the last rank SIGKILLs itself mid-save
    int bug_rope_local;        // "rope-local": RoPE positions restart in each rank's SP block
    int bug_no_cp_grad_sum;    // "cp-grad-sum": gradients summed over DP only, not over CP
    int bug_cp_local_pos;      // "cp-local-pos": each CP rank's positions start at 0
    int bug_cp_no_causal;      // "cp-no-causal": the ring attends to every chunk, no causal mask between them
    int bug_bf16_off;          // "bf16-off": --bf16 accepted and reported, the run stays fp32 (a secretly-fp32 build)
    int bug_no_vocab_mask;     // "no-vocab-mask": padded logits take part in the softmax (Megatron #1754)
    int bug_bf16_weights_only; // "bf16-weights-only": only the weights rounded, activations fp32
    int bug_unfused;           // "unfused": the op-by-op chains instead of the fused sweeps (test hook: bitwise the same)
    int bug_bucket_early;      // "bucket-early": --overlap-grad-reduce posts a bucket one layer before its gradients are final
    int bug_p2p_stale;         // "p2p-stale": --overlap-p2p-communication computes on the slot's stale input, not the early receive's buffer
    int bug_cp_ag_early;       // "cp-ag-early": --cp-comm-type allgather attends to the other blocks before their all-gather completed
    int bug_tp_async_early;    // "tp-async-early": the column-parallel backward reads its input gradient's sum before the wait
    // "fail-alloc@R", "fail-write@R", "fail-check@R": at the second iteration
    // world rank R alone meets an allocation failure (a real malloc of 2^62
    // bytes), a write error on its --metrics-file (rank 0 writes it) or a
    // failed internal check; the job must end within seconds, not hang.
    int bug_fail_site;         // 0 none, else one of MT_FAULT_*
    int bug_fail_rank;
} mt_config;

// Parses argv (with --config FILE lines first, argv overriding them), fills
// defaults and checks every rule that does not need the world size. On a bad
// flag prints one line (when loud) and exits 2. `notes` receives one line per
// GPU-only flag accepted with a note (printed by rank 0).
void mt_config_parse(mt_config *c, int argc, char **argv, int loud);

// Rules that need the world size (TP x PP x DP = world) and the vocabulary
// (known after --init-from or the data file): derives dp, Vp and M.
void mt_config_finish(mt_config *c, int world, int loud);

// Rank 0's parse (main.c): notes and warnings print when loud, but a bad
// flag returns -code (-2, or -1 for a runtime fault) with its line in err
// instead of exiting, so rank 0 can broadcast the verdict (and, on success,
// the whole mt_config: it holds no pointers) to ranks that never read a
// --config file themselves (--config /dev/stdin on several ranks).
int mt_config_parse_report(mt_config *c, int argc, char **argv, int loud, char *err, size_t errlen);

// The same two without exiting, for callers that must survive bad input (the
// fuzzer, tests/fuzz/fuzz_config.c): print nothing (no notes, no error) and
// return 0, or -1 with the one line the trainer would print in err. A bad
// --config file's memory is freed on that path too.
int mt_config_parse_checked(mt_config *c, int argc, char **argv, char *err, size_t errlen);
int mt_config_finish_checked(mt_config *c, int world, char *err, size_t errlen);

void mt_config_print(const mt_config *c, FILE *f);

// Whether `flag` (e.g. "--num-layers") was given explicitly.
int mt_config_was_set(const mt_config *c, const char *flag);
// The global batch of the step that starts after `consumed` samples:
// --global-batch-size, or under --rampup-batch-size Megatron's ramp.
int mt_batch_at(const mt_config *c, uint64_t consumed);

// The run's configuration as one JSON line (--metrics-file's first record):
// every flag's effective value, derived sizes, ranks, precision, the
// iteration it starts from, and "argv", the flags it was given (command line
// and --config files) with their values: a command line that reproduces it.
void mt_config_write_json(const mt_config *c, int world, int start_iteration, FILE *f);

#endif
