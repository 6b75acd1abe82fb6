// flags.c: the command line's table (flags.h) and --help.
#include "flags.h"

#include <string.h>

#include "config.h"

const char *const mt_flag_group_names[MT_FG_N] = {
    "model", "parallelism", "training and optimizer", "data", "files: checkpoints, weights, dumps", "logging",
    "Megatron flags this build notes (accepted, not acted on) or refuses (docs/megatron-flags.md)"};

#define O(f) offsetof(mt_config, f)
#define INT(flag, field, def, group, help) {flag, MT_F_INT, O(field), def, NULL, MT_FG_##group, help}
#define DBL(flag, field, def, group, help) {flag, MT_F_DBL, O(field), def, NULL, MT_FG_##group, help}
#define STR(flag, field, group, help) {flag, MT_F_STR, O(field), NULL, NULL, MT_FG_##group, help}
#define BOOL(flag, field, group, help) {flag, MT_F_BOOL, O(field), NULL, NULL, MT_FG_##group, help}
#define CHOICE(flag, field, choices, def, group, help) {flag, MT_F_CHOICE, O(field), def, choices, MT_FG_##group, help}
#define NOTE(flag, help) {flag, MT_F_NOTE, 0, NULL, NULL, MT_FG_GPU, help}
#define NOTE_ARG(flag, help) {flag, MT_F_NOTE_ARG, 0, NULL, NULL, MT_FG_GPU, help}
#define REFUSE(flag, help) {flag, MT_F_REFUSE, 0, NULL, NULL, MT_FG_GPU, help}

const mt_flag_def mt_flags[] = {
    INT("--num-layers", num_layers, "2", MODEL, "transformer layers"),
    INT("--hidden-size", hidden_size, "64", MODEL, "hidden size h"),
    INT("--num-attention-heads", num_heads, "4", MODEL, "attention heads a"),
    INT("--seq-length", seq_length, "64", MODEL, "sequence length s"),
    INT("--max-position-embeddings", max_position_embeddings, NULL, MODEL,
        "rows of the position table (default: --seq-length)"),
    INT("--vocab-size", vocab_size, "256", MODEL, "vocabulary V (a token file or --init-from may set it)"),
    INT("--make-vocab-size-divisible-by", vocab_divisor, "128", MODEL,
        "pad the vocabulary to a multiple of this (padding is masked out of the softmax)"),
    DBL("--init-method-std", init_method_std, "0.02", MODEL, "normal init std; output projections get std/sqrt(2 layers)"),
    DBL("--hidden-dropout", hidden_dropout, "0.1", MODEL, "dropout after the embedding, attention projection and fc2"),
    DBL("--attention-dropout", attention_dropout, "0.1", MODEL, "dropout on the attention probabilities"),
    CHOICE("--normalization", normalization, "LayerNorm|RMSNorm", "LayerNorm", MODEL, "the norm of every block and the final one"),
    DBL("--norm-epsilon", norm_epsilon, "1e-5", MODEL, "epsilon of the norms"),
    CHOICE("--position-embedding-type", position_embedding, "learned_absolute|rope", "learned_absolute", MODEL,
           "a learned position table, or rotary embeddings (rotate-half) on Q and K"),
    DBL("--rotary-base", rotary_base, "10000", MODEL, "RoPE: inv_freq = base^(-2i/d)"),
    DBL("--rotary-percent", rotary_percent, "1.0", MODEL, "RoPE: the fraction of each head's dims rotated"),
    BOOL("--use-rotary-position-embeddings", use_rotary_legacy, MODEL, "Megatron's older spelling of --position-embedding-type rope"),
    BOOL("--swiglu", swiglu, MODEL, "MLP down(silu(gate x) * up x) instead of fc2(gelu(fc1 x))"),
    INT("--ffn-hidden-size", ffn_hidden_size, NULL, MODEL,
        "MLP hidden size (default 4h; with --swiglu int(8h/3 / 64) * 64, as Megatron)"),
    BOOL("--group-query-attention", group_query_attention, MODEL, "K and V shared by groups of query heads"),
    INT("--num-query-groups", num_query_groups, NULL, MODEL, "KV heads with --group-query-attention (a multiple of TP)"),
    INT("--kv-channels", kv_channels, NULL, MODEL, "the head size: --hidden-size / --num-attention-heads (Megatron's default; no other is built)"),
    BOOL("--untie-embeddings-and-output-weights", untie_embeddings, MODEL, "a separate, vocab-parallel LM head"),
    BOOL("--disable-bias-linear", disable_bias_linear, MODEL, "no bias in any linear layer"),
    BOOL("--no-bias-gelu-fusion", no_bias_gelu_fusion, MODEL,
         "GELU and its bias gradient op by op, not one fused sweep (same bits; for timing the fusion)"),
    BOOL("--no-bias-dropout-fusion", no_bias_dropout_fusion, MODEL,
         "bias + dropout + residual op by op, not one fused sweep (same bits; for timing the fusion)"),
    BOOL("--use-flash-attn", flash_attn, MODEL, "the blocked (flash-style) attention kernel: no s x s matrix kept"),
    CHOICE("--recompute-granularity", recompute, "none|selective|full", "none", MODEL,
           "activation recomputation (Korthikanti et al. 2022)"),
    CHOICE("--recompute-method", recompute_method, "uniform|block", "uniform", MODEL,
           "full recomputation: groups of layers (uniform) or the first layers of each chunk (block)"),
    INT("--recompute-num-layers", recompute_num_layers, NULL, MODEL, "layers per group (uniform) or per chunk (block); default 1"),
    BOOL("--recompute-activations", recompute_activations, MODEL, "Megatron's shorthand for --recompute-granularity selective"),

    INT("--tensor-model-parallel-size", tp, "1", PARALLEL, "TP size"),
    INT("--context-parallel-size", cp, "1", PARALLEL,
        "CP size: every activation split along the sequence, rank r holding chunks r and 2C-1-r of 2C"),
    CHOICE("--cp-comm-type", cp_comm, "p2p|a2a|allgather|a2a+p2p", "p2p", PARALLEL,
           "attention across CP: a K/V ring (p2p), an all-to-all to a head split (a2a, Ulysses), every K/V block gathered (allgather), or both levels (a2a+p2p)"),
    {"--hierarchical-context-parallel-sizes", MT_F_INT2, O(hcp_sizes), NULL, NULL, MT_FG_PARALLEL,
     "a2a+p2p: the all-to-all groups' size (adjacent CP ranks) and the ring's; their product is --context-parallel-size"},
    BOOL("--sequence-parallel", sequence_parallel, PARALLEL, "split LayerNorm, dropout and residual along the sequence over TP"),
    INT("--pipeline-model-parallel-size", pp, "1", PARALLEL, "PP size (data parallelism takes the rest of the world)"),
    INT("--num-layers-per-virtual-pipeline-stage", layers_per_virtual_stage, NULL, PARALLEL,
        "layers per virtual stage: interleaved 1F1B"),
    CHOICE("--pipeline-schedule", schedule, "afab|1f1b", "1f1b", PARALLEL,
           "all-forward-all-backward (GPipe) or 1F1B; interleaving follows the flag above"),
    BOOL("--use-distributed-optimizer", use_distributed_optimizer, PARALLEL,
         "reduce-scatter gradients, 1/dp of the AdamW state per rank"),
    BOOL("--overlap-grad-reduce", overlap_grad_reduce, PARALLEL,
         "post each gradient bucket's DP reduction as soon as backward has finished it (same bits)"),
    BOOL("--overlap-param-gather", overlap_param_gather, PARALLEL,
         "distributed optimizer: the parameter all-gather runs behind the next forward (same bits)"),
    BOOL("--overlap-p2p-communication", overlap_p2p_comm, PARALLEL,
         "pipeline: post each receive as soon as its buffer is free, wait only when the data is used (same bits)"),
    BOOL("--no-async-tensor-model-parallel-allreduce", no_async_tp_allreduce, PARALLEL,
         "TP: wait for the column-parallel backward's collectives at once instead of behind its GEMMs (same bits)"),
    INT("--ddp-bucket-size", ddp_bucket_size, NULL, PARALLEL,
        "elements per gradient bucket (default max(40M, 1M x dp), Megatron's); the same buckets with or without overlap"),

    INT("--micro-batch-size", micro_batch_size, "1", TRAIN, "samples per micro-batch"),
    INT("--global-batch-size", global_batch_size, NULL, TRAIN,
        "samples per step (default micro-batch x dp); M = global / (micro x dp) micro-batches"),
    INT("--train-iters", train_iters, "10", TRAIN, "optimizer steps"),
    {"--train-samples", MT_F_U64, O(train_samples), NULL, NULL, MT_FG_TRAIN,
     "sample-based training (Megatron's): the steps that consume this many samples, the LR schedule counted in samples"},
    {"--rampup-batch-size", MT_F_INT3, O(rampup), NULL, NULL, MT_FG_TRAIN,
     "with --train-samples: the global batch grows from START by INCREMENT over SAMPLES to --global-batch-size"},
    DBL("--lr", lr, "1e-4", TRAIN, "peak learning rate"),
    DBL("--min-lr", min_lr, "0", TRAIN, "learning rate at the end of the decay"),
    CHOICE("--lr-decay-style", lr_style, "constant|linear|cosine|inverse-square-root|WSD", "linear", TRAIN, "decay after the warm-up"),
    CHOICE("--lr-wsd-decay-style", lr_wsd_style, "exponential|linear|cosine|minus_sqrt", "exponential", TRAIN, "WSD: the annealing phase's shape"),
    INT("--lr-wsd-decay-iters", lr_wsd_decay_iters, NULL, TRAIN, "WSD: the annealing phase, ending where the decay ends"),
    {"--lr-wsd-decay-samples", MT_F_U64, O(lr_wsd_decay_samples), NULL, NULL, MT_FG_TRAIN, "WSD with --train-samples: the annealing phase in samples"},
    INT("--lr-warmup-iters", lr_warmup_iters, "0", TRAIN, "linear warm-up from --lr-warmup-init"),
    DBL("--lr-warmup-fraction", lr_warmup_fraction, NULL, TRAIN, "warm-up over this fraction of the decay length (instead of --lr-warmup-iters/-samples)"),
    DBL("--lr-warmup-init", lr_warmup_init, "0", TRAIN, "the LR the warm-up starts from"),
    INT("--lr-decay-iters", lr_decay_iters, NULL, TRAIN, "decay length (default --train-iters)"),
    {"--lr-warmup-samples", MT_F_U64, O(lr_warmup_samples), NULL, NULL, MT_FG_TRAIN, "with --train-samples: linear warm-up over this many samples"},
    {"--lr-decay-samples", MT_F_U64, O(lr_decay_samples), NULL, NULL, MT_FG_TRAIN, "with --train-samples: decay length in samples (default --train-samples)"},
    DBL("--decoupled-lr", decoupled_lr, NULL, TRAIN, "the word embeddings' and output layer's peak LR (Megatron's decoupled group)"),
    DBL("--decoupled-min-lr", decoupled_min_lr, NULL, TRAIN, "with --decoupled-lr: that group's floor (default --min-lr)"),
    DBL("--weight-decay", weight_decay, "0.01", TRAIN, "AdamW decay (not on biases and norm weights)"),
    CHOICE("--weight-decay-incr-style", wd_incr_style, "constant|linear|cosine", "constant", TRAIN,
           "weight decay from --start-weight-decay to --end-weight-decay over the run (constant: --weight-decay)"),
    DBL("--start-weight-decay", start_weight_decay, NULL, TRAIN, "with --weight-decay-incr-style linear|cosine: the first step's decay"),
    DBL("--end-weight-decay", end_weight_decay, NULL, TRAIN, "with --weight-decay-incr-style linear|cosine: the last step's decay"),
    BOOL("--weight-decay-all", weight_decay_all, TRAIN, "decay every tensor, biases and norms too (llm.c's rule)"),
    DBL("--adam-beta1", adam_beta1, "0.9", TRAIN, "AdamW beta1"),
    DBL("--adam-beta2", adam_beta2, "0.999", TRAIN, "AdamW beta2"),
    DBL("--adam-eps", adam_eps, "1e-8", TRAIN, "AdamW epsilon"),
    DBL("--clip-grad", clip_grad, "1.0", TRAIN, "global-norm clipping (0 disables)"),
    BOOL("--no-grad-norm-fusion", no_grad_norm_fusion, TRAIN,
         "the gradient norm in one pass after backward, not as gradients become final or in DP's average (same bits)"),
    {"--seed", MT_F_U64, O(seed), "1234", NULL, MT_FG_TRAIN, "every random number is keyed by it and by global indices"},

    STR("--data-path", data_path, DATA, "one llm.c token file, split by --split"),
    {"--split", MT_F_SPECIAL, 0, "969,30,1", NULL, MT_FG_DATA, "train,valid,test weights over the token ranges of --data-path"},
    STR("--train-data-path", train_data_path, DATA, "the training token file (instead of --data-path)"),
    STR("--valid-data-path", valid_data_path, DATA, "the validation token file (with --train-data-path)"),
    CHOICE("--data-order", data_order, "shuffle|sequential", "shuffle", DATA,
           "sample order; sequential: sample j = tokens [jT, (j+1)T+1) (llm.c's)"),
    INT("--eval-interval", eval_interval, "0", DATA, "validation every N iterations (0: never)"),
    INT("--eval-iters", eval_iters, "10", DATA, "global batches per validation"),

    STR("--init-from", init_from, FILES,
        "start from an llm.c model file or a Hugging Face model directory (they give the shape)"),
    STR("--export-llmc", export_llmc, FILES, "write the final weights as an llm.c model file"),
    STR("--export-hf", export_hf, FILES, "write the final weights as a Hugging Face model directory"),
    STR("--save", save, FILES, "checkpoint directory"),
    STR("--load", load, FILES, "resume from this checkpoint directory (none there yet: start fresh)"),
    BOOL("--finetune", finetune, FILES, "--load reads the weights alone: iteration 0, no samples consumed, a fresh AdamW (Megatron's)"),
    STR("--pretrained-checkpoint", pretrained, FILES, "checkpoint directory to fine-tune from (as --finetune) while --load holds none: a relaunch resumes --load"),
    BOOL("--no-load-optim", no_load_optim, FILES, "--load skips the optimizer: the iteration and data position resume, AdamW and the LR schedule restart"),
    INT("--save-interval", save_interval, "0", FILES, "save every N iterations (and at the end)"),
    INT("--exit-interval", exit_interval, "0", FILES, "save and stop when the iteration is a multiple of N"),
    INT("--exit-duration-in-mins", exit_duration_mins, NULL, FILES, "save and stop after the first iteration that ends past N minutes since the start (0: off; every rank agrees)"),
    STR("--dump-params", dump_params, FILES, "write the final weights as safetensors in the build's precision"),
    INT("--dump-step", dump_step, "0", FILES, "with --dump-dir: parameters and gradients of iteration N"),
    STR("--dump-dir", dump_dir, FILES, "directory for --dump-step's step_N.safetensors"),

    STR("--metrics-file", metrics_file, LOG, "append one JSON object per iteration"),
    STR("--timeline", timeline, LOG, "an SVG timeline of the last iteration (and FILE.json, a Chrome trace)"),
    INT("--log-interval", log_interval, "1", LOG, "a log line every N iterations"),
    BOOL("--log-layout", log_layout, LOG, "every rank's coordinates and groups"),
    BOOL("--log-llmc-steps", log_llmc_steps, LOG, "also print llm.c's line \"step k: train loss X (took T ms)\", k from 0"),
    BOOL("--log-params-norm", log_params_norm, LOG, "the parameters' L2 norm after each step on the log line (Megatron's; each tensor counted once)"),
    BOOL("--log-memory", log_memory, LOG, "bytes per category on every rank, next to the formulas"),
    BOOL("--log-comm", log_comm, LOG, "collectives per iteration on every rank, next to the formulas"),
    BOOL("--log-pipeline", log_pipeline, LOG, "time each rank waited on the pipeline, next to the formula"),
    BOOL("--verbose", verbose, LOG, "more detail: --log-memory adds each layer's activations tensor by tensor"),
    BOOL("--dry-run", dry_run, LOG, "check the flags and the layout, allocate nothing"),

    BOOL("--tf32", tf32, TRAIN, "CUDA build only: fp32 products on TF32 tensor cores (cuBLAS TF32 math; opt-in, changes the numbers at about 1e-3)"),
    BOOL("--bf16", bf16, TRAIN, "Megatron's bf16 mixed precision, emulated exactly: bf16 weights and activations, fp32 main weights and gradients (fp32 build only)"),
    NOTE("--fp16", "the CPU build computes in fp32 (pretrain_gpt) or fp64 (pretrain_gpt_fp64)"),
    NOTE_ARG("--fp8-format", "no FP8 on CPUs; matrix products run in the build's precision"),
    NOTE_ARG("--fp8-margin", "no FP8 on CPUs; ignored"),
    NOTE_ARG("--fp8-interval", "no FP8 on CPUs; ignored"),
    NOTE_ARG("--fp8-amax-history-len", "no FP8 on CPUs; ignored"),
    NOTE_ARG("--fp8-amax-compute-algo", "no FP8 on CPUs; ignored"),
    NOTE("--use-mcore-models", "one implementation here; the model is the same either way"),
    NOTE_ARG("--transformer-impl", "one implementation here (no Transformer Engine); ignored"),
    NOTE_ARG("--distributed-backend", "MPI carries every collective; ignored"),
    NOTE("--tp-comm-overlap", "no GEMMs split into chunks with their communication (Transformer Engine's userbuffers); the backward's TP collectives already run behind its GEMMs"),
    NOTE("--no-masked-softmax-fusion", "CPU build: the attention's mask and softmax always run inside its blocked products (CUDA: a separate softmax kernel); ignored"),
    NOTE("--no-gradient-accumulation-fusion", "weight gradients always accumulate inside the GEMM (beta 1); same numbers"),
    NOTE("--no-persist-layer-norm", "one LayerNorm kernel here (no persistent variant); ignored"),
    NOTE("--attention-softmax-in-fp32", "the softmax always computes in fp32 (fp64 in pretrain_gpt_fp64)"),
    NOTE("--accumulate-allreduce-grads-in-fp32", "gradients always accumulate and reduce in fp32 (fp64 in pretrain_gpt_fp64)"),
    NOTE("--use-cpu-initialization", "initialisation always runs on the CPU, keyed by global indices"),
    NOTE_ARG("--tokenizer-type", "token files come tokenized (tools/prepare_data --tokenizer); ignored"),
    NOTE_ARG("--vocab-file", "ignored; the vocabulary size comes from --vocab-size or the token file"),
    NOTE_ARG("--merge-file", "ignored; tools/prepare_data --tokenizer reads merges from tokenizer.json"),
    NOTE_ARG("--num-workers", "the data loader reads in the training loop; ignored"),
    NOTE_ARG("--tensorboard-dir", "no TensorBoard; --metrics-file writes one JSON line per iteration"),
    NOTE("--log-throughput", "tokens per second is always on the log line"),
    REFUSE("--num-experts", "mixture of experts is not implemented here (dense models only)"),
    REFUSE("--expert-model-parallel-size", "mixture of experts is not implemented here (dense models only)"),
    NOTE("--no-load-rng", "there is no RNG state to load: every random number is keyed by seed and global indices"),
    REFUSE("--fp16-lm-cross-entropy", "the cross-entropy runs in fp32 (or fp64); a 16-bit one would change the losses"),
    NOTE_ARG("--attention-backend", "one attention per build, exact softmax attention (--use-flash-attn picks the blocked kernel); ignored"),
    NOTE("--cross-entropy-loss-fusion", "the cross-entropy is always one fused pass with its softmax and backward; same numbers"),
    NOTE_ARG("--cross-entropy-fusion-impl", "the cross-entropy is always one fused pass with its softmax and backward; ignored"),
    NOTE("--no-bias-swiglu-fusion", "one SwiGLU kernel here; ignored"),
    NOTE("--grad-reduce-in-bf16", "gradients reduce in fp32 (fp64 in pretrain_gpt_fp64), as Megatron does without this flag"),
    NOTE("--fp8-param-gather", "no FP8 on CPUs; ignored"),
    NOTE_ARG("--fp8-recipe", "no FP8 on CPUs; ignored"),
    NOTE_ARG("--initial-loss-scale", "no loss scaling: nothing computes in fp16 here (--fp16's note); ignored"),
    NOTE_ARG("--min-loss-scale", "no loss scaling: nothing computes in fp16 here (--fp16's note); ignored"),
    NOTE_ARG("--loss-scale", "no loss scaling: nothing computes in fp16 here (--fp16's note); ignored"),
    NOTE_ARG("--loss-scale-window", "no loss scaling: nothing computes in fp16 here (--fp16's note); ignored"),
    NOTE_ARG("--hysteresis", "no loss scaling: nothing computes in fp16 here (--fp16's note); ignored"),
    NOTE("--calculate-per-token-loss", "no loss mask here: every micro-batch counts the same tokens, so the per-token average is this build's average"),
    NOTE("--overlap-param-gather-with-optimizer-step", "with --overlap-param-gather the all-gather already runs behind the next forward; ignored"),
    NOTE("--manual-gc", "no garbage collector here; ignored"),
    NOTE_ARG("--manual-gc-interval", "no garbage collector here; ignored"),
    NOTE_ARG("--empty-unused-memory-level", "no caching allocator: every buffer is allocated once, before the first step; ignored"),
    NOTE_ARG("--distributed-timeout-minutes", "MPI collectives have no timeout; a rank that fails ends the job; ignored"),
    NOTE_ARG("--data-cache-path", "no dataset index to cache: token files are read in place; ignored"),
    NOTE("--no-mmap-bin-files", "token files are read in place; ignored"),
    NOTE("--mmap-warmup", "token files are read in place; ignored"),
    NOTE("--no-create-attention-mask-in-dataloader", "the causal mask is never stored: the kernels skip what it hides; ignored"),
    NOTE_ARG("--num-dataset-builder-threads", "no dataset index to build; ignored"),
    NOTE_ARG("--tokenizer-model", "token files come tokenized (tools/prepare_data --tokenizer); ignored"),
    NOTE_ARG("--tiktoken-pattern", "token files come tokenized (tools/prepare_data --tokenizer); ignored"),
    NOTE_ARG("--test-data-path", "no test split is evaluated here (validation: --eval-interval); ignored"),
    NOTE("--log-timers-to-tensorboard", "no TensorBoard; --metrics-file writes one JSON line per iteration"),
    NOTE("--log-validation-ppl-to-tensorboard", "no TensorBoard; the log line prints the validation perplexity"),
    NOTE("--log-memory-to-tensorboard", "no TensorBoard; --log-memory prints each rank's bytes next to the formulas"),
    NOTE_ARG("--wandb-project", "no Weights & Biases; --metrics-file writes one JSON line per iteration"),
    NOTE_ARG("--wandb-exp-name", "no Weights & Biases; ignored"),
    NOTE_ARG("--wandb-save-dir", "no Weights & Biases; ignored"),
    NOTE_ARG("--timing-log-level", "--timeline draws every rank's compute and communication of the last iteration; ignored"),
    NOTE("--profile", "no profiler hooks: --timeline writes a Chrome trace of the last iteration; ignored"),
    NOTE_ARG("--profile-step-start", "no profiler hooks: --timeline writes a Chrome trace of the last iteration; ignored"),
    NOTE_ARG("--profile-step-end", "no profiler hooks: --timeline writes a Chrome trace of the last iteration; ignored"),
    NOTE("--log-num-zeros-in-grad", "zeros in the gradients are not counted here; ignored"),
    NOTE_ARG("--ckpt-format", "checkpoints are this build's safetensors directories, resharded on load; ignored"),
    NOTE("--use-dist-ckpt", "checkpoints are this build's safetensors directories, resharded on load; ignored"),
    NOTE("--async-save", "checkpoints are written before training goes on (then renamed into place); same files"),
    NOTE("--no-save-optim", "the optimizer state is saved anyway, so a checkpoint resumes exactly; ignored"),
    NOTE("--no-save-rng", "there is no RNG state to save: every random number is keyed by seed and global indices"),
    NOTE("--override-opt_param-scheduler", "the schedule always comes from this run's flags (checkpoints keep only the scheduler's count); same as Megatron with this flag"),
    REFUSE("--use-checkpoint-opt_param-scheduler", "checkpoints keep only the scheduler's count here, not its settings: give the checkpoint's schedule as flags"),
    REFUSE("--apply-layernorm-1p", "LayerNorm weights stored as 1 + w (zero-centred gamma) are not built; the parameters would differ"),
    REFUSE("--qk-layernorm", "normalised queries and keys are not built; it would be another model"),
    REFUSE("--squared-relu", "the squared-ReLU MLP is not built (GELU, or --swiglu)"),
    REFUSE("--eod-mask-loss", "no loss mask here: every token of a sample counts, end-of-document tokens too"),
    REFUSE("--reset-position-ids", "documents are not separated inside a sample here: positions run over the whole sequence"),
    REFUSE("--reset-attention-mask", "documents are not separated inside a sample here: attention crosses document ends"),
    REFUSE("--mock-data", "no synthetic data: give --data-path (tools/get-data.sh makes a corpus)"),
};
const int mt_nflags = (int)(sizeof mt_flags / sizeof mt_flags[0]);
_Static_assert(sizeof mt_flags / sizeof mt_flags[0] <= 64 * sizeof ((mt_config *)0)->set_mask / sizeof(uint64_t), "mt_config.set_mask holds a bit per flag");

// What a flag's value looks like in --help.
static void value_form(const mt_flag_def *d, char *out, size_t len) {
    switch (d->type) {
    case MT_F_INT: snprintf(out, len, " N"); break;
    case MT_F_DBL: snprintf(out, len, " X"); break;
    case MT_F_U64: snprintf(out, len, " N"); break;
    case MT_F_STR: snprintf(out, len, " %s", strstr(d->help, "directory") ? "DIR" : "FILE"); break;
    case MT_F_CHOICE: snprintf(out, len, " %s", d->choices); break;
    case MT_F_SPECIAL: snprintf(out, len, " A,B,C"); break;
    case MT_F_INT2: snprintf(out, len, " A B"); break;
    case MT_F_INT3: snprintf(out, len, " START INCREMENT SAMPLES"); break;
    case MT_F_NOTE_ARG: snprintf(out, len, " V"); break;
    default: out[0] = 0;
    }
}

void mt_flags_help(FILE *f) {
    for (int g = 0; g < MT_FG_N; g++) {
        fprintf(f, "\n%s:\n", mt_flag_group_names[g]);
        for (int i = 0; i < mt_nflags; i++) {
            const mt_flag_def *d = &mt_flags[i];
            if (d->group != (mt_flag_group)g) continue;
            char form[96], head[160];
            value_form(d, form, sizeof form);
            snprintf(head, sizeof head, "%s%s", d->name, form);
            fprintf(f, "  %-44s %s%s%s%s%s\n", head, d->type == MT_F_REFUSE ? "REFUSED (exit 2): " : "", d->help, d->def ? " (default " : "", d->def ? d->def : "",
                    d->def ? ")" : "");
        }
    }
}
