#!/usr/bin/env bash
# tests/suite_bad_input.sh: every kind of bad input (flags, flag combinations,
# --config files, token files, llm.c model files for --init-from) ends the run
# with exit code 2 and exactly one line on stderr that names the flag or file
# and the rule: no crash, no hang, no other rank's noise (docs/design.md §3).
#
#   bad NAME EXPECT CMD...    CMD exits 2; stderr, less "note:"/"warning:"
#                             lines, is one line containing EXPECT (fixed text)
#   good NAME CMD...          positive control: CMD exits 0
#   say NAME EXPECT CMD...    CMD exits 0 and says EXPECT on stdout (a run
#                             that does nothing must say so)
#
# Every case must also end within $CASE_SECONDS seconds (no hang, no slow
# failure: a 3 GB sparse file is refused from its header), and leave every
# file it found unchanged: the scratch files (files/) and the case's own
# directory (own/NAME, made by own_dir: canaries, inputs an output must not
# overwrite, a user's PATH.tmp) are listed with type, size, checksum and
# link target before the cases run and compared after.
#
# Cases named np<N>_* run under tools/mpirun.sh N: there too stderr must be
# rank 0's one line (no other rank's copy, no mpirun banner) and mpirun's exit
# code 2. Cases run a few at a time (most of a case's wall time is MPI
# start-up, not CPU), each under a 20 s timeout (a hang is a failure);
# results print in table order.
#
#   bash tests/suite_bad_input.sh               run the checks
#   bash tests/suite_bad_input.sh --doc FILE    also write the table of what the
#                                               user sees (docs/bad-input.md); what
#                                               follows the line <!-- save-faults -->
#                                               in FILE is kept (another suite's part)
#   MT_BAD_INPUT_BIN=DIR bash tests/suite_bad_input.sh
#                       the same cases against DIR/pretrain_gpt and DIR/{plan,generate,
#                       compare} (e.g. binaries built from an older commit, to count
#                       what a change fixed); cases unsafe for a binary that may
#                       replace a device (/dev/full) are skipped, with a line
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
doc=""
[ "${1:-}" = --doc ] && doc=$2
# A private copy: another shell rebuilding ./pretrain_gpt mid-suite would
# otherwise fail cases with "Permission denied" (text file busy).
OLD=${MT_BAD_INPUT_BIN:-}
SRC=${OLD:-.}
cp "$SRC/pretrain_gpt" "$T/pretrain_gpt" || { not_ok bad_input_setup "no $SRC/pretrain_gpt (make all)"; exit 1; }
BIN=$T/pretrain_gpt
# The tools the strict-parsing cases run (copies, for the same reason).
mkdir -p "$T/tools"
for t in plan generate compare; do
  if [ -n "$OLD" ]; then cp "$OLD/$t" "$T/tools/$t"; else cp "tools/$t" "$T/tools/$t"; fi || { not_ok bad_input_setup "no $t"; exit 1; }
done
TL=$T/tools
CASE_SECONDS=${MT_BAD_INPUT_CASE_SECONDS:-15}
JOBS=${MT_BAD_INPUT_JOBS:-6}
# A one-rank run (no mpirun) is an MPI singleton; without this Open MPI
# starts a helper daemon per run, which would be most of this suite's time.
# It only serves MPI_Comm_spawn, which pretrain_gpt never calls.
export OMPI_MCA_ess_singleton_isolated=${OMPI_MCA_ess_singleton_isolated:-1}
rm -rf "$T/cases" "$T/own"; mkdir -p "$T/cases" "$T/files" "$T/own"
F=$T/files
C=$(test_corpus)
# shellcheck disable=SC2207
M=($(tiny_model))

names=()
section=""
# add KIND NAME EXPECT CMD...: queues a case (files $T/cases/NAME.*).
add() {
  local kind=$1 name=$2 expect=$3; shift 3
  [ -e "$T/cases/$name.case" ] && { not_ok "bad_input/$name" "case name used twice"; return; }
  if [ "$skip_next" = 1 ]; then skip_next=0; return; fi
  names+=("$name")
  printf '%s\n%s\n%s\n%s\n' "$kind" "$expect" "$section" "$*" > "$T/cases/$name.case"
  printf '%s\0' "$@" > "$T/cases/$name.args"
}
# launch NAME: runs a queued case in the background, at most $JOBS at once.
launch() {
  local name=$1 args
  mapfile -d '' -t args < "$T/cases/$name.args"
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
  # Isolated singletons share Open MPI's session directory name: one per case.
  ( export OMPI_MCA_orte_tmpdir_base=$T/cases/$name.mpi
    t0=$(date +%s%N)
    timeout --kill-after=5 20 "${args[@]}" > "$T/cases/$name.out" 2> "$T/cases/$name.err" < /dev/null
    echo $? > "$T/cases/$name.rc"
    echo $(( ($(date +%s%N) - t0) / 1000000 )) > "$T/cases/$name.ms" ) &
}
bad() { local n=$1 e=$2; shift 2; add bad "$n" "$e" "$@"; }
good() { local n=$1; shift; add good "$n" "" "$@"; }
say() { local n=$1 e=$2; shift 2; add say "$n" "$e" "$@"; }
# unsafe NAME: the next case could replace a device (/dev/full) or take
# gigabytes of memory (/dev/zero, a 3 GB sparse file read whole) with a
# binary that lacks the checks: skipped (with a line) when testing such a
# binary (MT_BAD_INPUT_BIN), on a machine others share.
skip_next=0
unsafe() { if [ -n "$OLD" ]; then echo "# skip bad_input/$1: unsafe against $OLD/pretrain_gpt"; skip_next=1; fi; }
# own_dir NAME: the case's own directory, listed before and after.
own_dir() { mkdir -p "$T/own/$1"; printf '%s\n' "$1" > "$T/own/$1/canary"; echo "$T/own/$1"; }
# manifest DIR: every entry under DIR: type, size, checksum (regular files),
# link target (links); FIFOs are listed, never opened.
manifest() {
  [ -d "$1" ] || return 0
  find "$1" -mindepth 1 \( -path '*.mpi' -prune \) -o -printf '%P %y %s %l\n' | LC_ALL=C sort | while read -r p y sz l; do
    if [ "$y" = f ] && [ "$sz" -lt $((64 << 20)) ]; then echo "$p $y $sz $(cksum < "$1/$p" | cut -d' ' -f1)"; else echo "$p $y $sz $l"; fi
  done
}

# ---- files: a valid llm.c model, then corrupted copies ----------------------
# The tiny model trained one iteration and exported: a valid llm.c model file
# (the positive control loads it), from which the corrupted copies are made.
if ! timeout 60 $BIN "${M[@]}" --train-iters 1 --export-llmc "$F/model.bin" > "$F/export.log" 2>&1; then
  not_ok bad_input_setup "exporting the tiny model failed: $(tail -n 3 "$F/export.log")"
  exit 1
fi
python3 - "$F" "${C}_train.bin" <<'EOF'
import os, struct, sys
F, corpus = sys.argv[1], sys.argv[2]
def w(name, data):
    with open(os.path.join(F, name), "wb") as f: f.write(data)
def hdr(*vals):  # 256 little-endian int32
    v = list(vals) + [0] * (256 - len(vals))
    return struct.pack("<256i", *v)
def tok_file(tokens, version=1, count=None, magic=20240520):
    fmt = "<%dH" if version == 1 else "<%dI"
    return hdr(magic, version, len(tokens) if count is None else count) + struct.pack(fmt % len(tokens), *tokens)
good_tokens = list(struct.unpack("<200H", open(corpus, "rb").read()[1024:1024 + 2 * 200]))  # version-1 file
# token files
w("tok_empty.bin", b"")
w("tok_trunc.bin", tok_file(good_tokens)[:100])
w("tok_magic.bin", tok_file(good_tokens, magic=12345))
w("tok_version.bin", tok_file(good_tokens, version=3)[:1024] + struct.pack("<200H", *good_tokens))
w("tok_more.bin", tok_file(good_tokens, count=250))      # header claims more than the file holds
w("tok_fewer.bin", tok_file(good_tokens, count=150))     # file holds more than the header says
w("tok_count.bin", tok_file(good_tokens, count=-5))
w("tok_short.bin", tok_file(good_tokens[:10]))           # 10 tokens < seq 16 + 1
w("tok_bigid.bin", tok_file(good_tokens[:100] + [300] + good_tokens[101:]))
w("tok_v2_bigid.bin", tok_file(good_tokens[:50] + [2**31 + 7] + good_tokens[51:], version=2))
# llm.c model files
m = bytearray(open(os.path.join(F, "model.bin"), "rb").read())
h = list(struct.unpack("<256i", bytes(m[:1024])))
assert h[0] == 20240326 and h[1] == 3 and h[4] == 4, h[:8]
def mh(**kw):
    x = list(h)
    for k, v in kw.items(): x[{"magic": 0, "version": 1, "maxT": 2, "V": 3, "L": 4, "NH": 5, "C": 6, "Vp": 7}[k]] = v
    return struct.pack("<256i", *x) + bytes(m[1024:])
w("m_trunc_hdr.bin", bytes(m[:500]))
w("m_trunc_data.bin", bytes(m[:len(m) - 4000]))
w("m_extra.bin", bytes(m) + b"\0" * 8)
w("m_magic.bin", mh(magic=12345))
w("m_version.bin", mh(version=5))
w("m_layers0.bin", mh(L=0))
w("m_layers3.bin", mh(L=3))                      # plausible, but the size is a 4-layer file's
w("m_heads.bin", mh(NH=5))                       # 32 channels over 5 heads
w("m_vp.bin", mh(Vp=100))                        # padded vocab below vocab
w("m_neg.bin", mh(maxT=-16))
w("m_huge.bin", mh(C=2**30))
def nan_at(idx, bits):
    x = bytearray(m)
    x[1024 + 4 * idx:1024 + 4 * idx + 4] = struct.pack("<I", bits)
    return bytes(x)
w("m_nan.bin", nan_at(5, 0x7fc00000))             # wte.weight
w("m_inf_last.bin", nan_at((len(m) - 1024) // 4 - 1, 0x7f800000))   # ln_f.bias, the last value
EOF
mkdir -p "$F/adir"
rm -f "$F/fifo"; mkfifo "$F/fifo"   # opening it for reading would block: a hang unless refused
# --config files
cf() { local n=$1; shift; printf '%s\n' "$@" > "$F/$n.conf"; }
cf nested "# a config that includes another" "--num-layers 4" "--config $F/nested.conf"
cf word "--num-layers 4" "hidden-size 32"
cf badval "--hidden-size 32" "--num-layers four"
cf noval "--hidden-size 32" "--lr"
cf unknown "--hidden-size 32" "--hiden-size 32"
cf good "# the tiny model's shape" "--num-layers 4" "--hidden-size 32   # comment after a value" "--num-attention-heads 4"
awk 'BEGIN { printf "--num-layers "; for (i = 0; i < 5000; i++) printf "4"; print "" }' > "$F/long.conf"
printf -- '--num-layers 2\n--hidden\0-size 32\n' > "$F/nul.conf"
# A 4095-character comment line is the longest allowed (positive control).
awk 'BEGIN { printf "#"; for (i = 0; i < 4094; i++) printf "x"; print "" }' > "$F/longest.conf"

section="Flags and flag combinations"
# ---- flags ---------------------------------------------------------------------
good  control_tiny_model                         $BIN "${M[@]}" --train-iters 1
good  control_config_file                        $BIN "${M[@]}" --train-iters 1 --config "$F/good.conf"
bad   unknown_flag            "'--bogus'"        $BIN "${M[@]}" --bogus
bad   unknown_flag_single_dash "'-lr'"           $BIN "${M[@]}" -lr 1e-3
bad   positional_argument     "'extra'"          $BIN "${M[@]}" extra
bad   missing_value_last      "--lr needs a value" $BIN "${M[@]}" --lr
bad   missing_value_mid       "--save needs a value" $BIN "${M[@]}" --save --train-iters 1
bad   value_is_a_flag         "--lr needs a value, got the flag '--train-iters'" $BIN "${M[@]}" --lr --train-iters 1
bad   non_integer             "--num-layers expects an integer" $BIN "${M[@]}" --num-layers four
bad   fractional_integer      "--micro-batch-size expects an integer" $BIN "${M[@]}" --micro-batch-size 1.5
bad   integer_overflow        "--train-iters expects an integer" $BIN "${M[@]}" --train-iters 99999999999
bad   non_number              "--lr expects a finite number" $BIN "${M[@]}" --lr fast
bad   tf32_on_a_cpu_build     "--tf32: TF32 is a GPU math mode" $BIN "${M[@]}" --tf32
bad   nan_number              "--weight-decay expects a finite number" $BIN "${M[@]}" --weight-decay nan
bad   negative_seed           "--seed"           $BIN "${M[@]}" --seed -1
bad   zero_layers             "--num-layers must be in [1, 4096]" $BIN "${M[@]}" --num-layers 0
bad   negative_hidden         "--hidden-size must be in [1, 65536]" $BIN "${M[@]}" --hidden-size -32
bad   zero_heads              "--num-attention-heads" $BIN "${M[@]}" --num-attention-heads 0
bad   zero_seq                "--seq-length"     $BIN "${M[@]}" --seq-length 0
bad   zero_micro_batch        "--micro-batch-size must be >= 1" $BIN "${M[@]}" --micro-batch-size 0
bad   negative_global_batch   "--global-batch-size" $BIN "${M[@]}" --global-batch-size -8
bad   negative_train_iters    "--train-iters must be >= 0" $BIN "${M[@]}" --train-iters -1
bad   vocab_one               "--vocab-size must be >= 2" $BIN "${M[@]}" --vocab-size 1
bad   zero_vocab_divisor      "--make-vocab-size-divisible-by" $BIN "${M[@]}" --make-vocab-size-divisible-by 0
bad   zero_tp                 "--tensor-model-parallel-size must be >= 1" $BIN "${M[@]}" --tensor-model-parallel-size 0
bad   negative_pp             "--pipeline-model-parallel-size must be >= 1" $BIN "${M[@]}" --pipeline-model-parallel-size -2
bad   zero_eval_iters         "--eval-iters must be >= 1" $BIN "${M[@]}" --eval-iters 0
bad   zero_log_interval       "--log-interval must be >= 1" $BIN "${M[@]}" --log-interval 0
bad   zero_init_std           "--init-method-std must be > 0" $BIN "${M[@]}" --init-method-std 0
bad   zero_adam_eps           "--adam-eps must be > 0" $BIN "${M[@]}" --adam-eps 0
bad   negative_clip_grad      "--clip-grad must be >= 0" $BIN "${M[@]}" --clip-grad -1
bad   negative_weight_decay   "--weight-decay must be >= 0" $BIN "${M[@]}" --weight-decay -0.1
bad   huge_hidden             "--hidden-size must be in [1, 65536]" $BIN "${M[@]}" --hidden-size 2147483644
bad   huge_layers             "--num-layers must be in [1, 4096]" $BIN "${M[@]}" --num-layers 100000000
bad   micro_batch_tokens_overflow "--micro-batch-size (2147483647) x --seq-length (16)" $BIN "${M[@]}" --micro-batch-size 2147483647 --global-batch-size 2147483647
bad   huge_vocab_divisor      "--make-vocab-size-divisible-by must be in [1, 65536]" $BIN "${M[@]}" --make-vocab-size-divisible-by 2147483647
bad   padded_vocab_overflow   "padded vocabulary 2147483648" $BIN "${M[@]}" --vocab-size 2147483600 --make-vocab-size-divisible-by 128
bad   hidden_not_div_heads    "--hidden-size (30) must be divisible by --num-attention-heads (4)" $BIN "${M[@]}" --hidden-size 30
bad   seq_over_positions      "--max-position-embeddings (16) must be >= --seq-length (32)" $BIN "${M[@]}" --seq-length 32 --max-position-embeddings 16
bad   global_batch_not_div    "--global-batch-size (7) must be divisible by --micro-batch-size (2)" $BIN "${M[@]}" --global-batch-size 7
bad   world_not_multiple      "world size 1 must be a multiple of --tensor-model-parallel-size (2)" $BIN "${M[@]}" --tensor-model-parallel-size 2
bad   hidden_dropout_one      "--hidden-dropout must be in [0, 1)" $BIN "${M[@]}" --hidden-dropout 1
bad   attention_dropout_neg   "--attention-dropout must be in [0, 1)" $BIN "${M[@]}" --attention-dropout -0.1
bad   beta1_one               "--adam-beta1 must be in [0, 1)" $BIN "${M[@]}" --adam-beta1 1
bad   beta2_over              "--adam-beta2 must be in [0, 1)" $BIN "${M[@]}" --adam-beta2 1.5
bad   min_lr_over_lr          "--min-lr (0.01) must be in [0, --lr (0.001)]" $BIN "${M[@]}" --min-lr 1e-2
bad   negative_lr             "--lr must be >= 0" $BIN "${M[@]}" --lr -1e-3
bad   decay_iters_le_warmup   "--lr-decay-iters (2) must exceed --lr-warmup-iters (2)" $BIN "${M[@]}" --lr-decay-iters 2
bad   lr_decay_style          "--lr-decay-style must be constant, linear, cosine, inverse-square-root or WSD, got 'exponential'" $BIN "${M[@]}" --lr-decay-style exponential
bad   split_two_parts         "--split expects three non-negative weights" $BIN "${M[@]}" --split 90,10
bad   split_zero_train        "--split expects three non-negative weights" $BIN "${M[@]}" --split 0,50,50
bad   split_negative          "--split expects three non-negative weights" $BIN "${M[@]}" --split 90,-5,15
bad   data_order              "--data-order must be shuffle or sequential, got 'random'" $BIN "${M[@]}" --data-order random
bad   pipeline_schedule       "--pipeline-schedule must be afab or 1f1b" $BIN "${M[@]}" --pipeline-schedule gpipe
bad   virtual_pp_without_pp   "--num-layers-per-virtual-pipeline-stage needs --pipeline-model-parallel-size > 1" $BIN "${M[@]}" --num-layers-per-virtual-pipeline-stage 1
bad   virtual_pp_with_afab    "--num-layers-per-virtual-pipeline-stage needs the 1f1b schedule" $BIN "${M[@]}" --num-layers-per-virtual-pipeline-stage 1 --pipeline-schedule afab
bad   virtual_pp_negative     "--num-layers-per-virtual-pipeline-stage must be >= 1" $BIN "${M[@]}" --num-layers-per-virtual-pipeline-stage -1
say   save_interval_no_save   "note: --save-interval 5 without --save DIR: no checkpoint is written" $TL/plan --world-size 1 "${M[@]}" --save-interval 5
bad   missing_data_path       "--data-path FILE (or --train-data-path FILE) is required" $BIN --num-layers 2
bad   both_data_paths         "either --data-path or --train-data-path" $BIN "${M[@]}" --data-path "${C}_train.bin"
bad   valid_without_train     "--valid-data-path needs --train-data-path" $BIN --data-path "${C}_train.bin" --valid-data-path "${C}_val.bin"
bad   long_path               "--save: path longer than 1023 characters" $BIN "${M[@]}" --save "$(printf 'd%.0s' {1..1100})"
# several ranks: only rank 0 speaks, mpirun adds nothing, every rank exits 2
bad   np2_unknown_flag        "'--bogus'"        $MPIRUN 2 $BIN "${M[@]}" --bogus
bad   np4_bad_value           "--num-layers expects an integer" $MPIRUN 4 $BIN "${M[@]}" --num-layers x
bad   np3_heads_not_div_tp    "--num-attention-heads (4) must be divisible by --tensor-model-parallel-size (3)" $MPIRUN 3 $BIN "${M[@]}" --tensor-model-parallel-size 3
bad   np2_sp_seq_not_div_tp   "--sequence-parallel needs --seq-length (15) divisible by --tensor-model-parallel-size (2)" $MPIRUN 2 $BIN "${M[@]}" --tensor-model-parallel-size 2 --sequence-parallel --seq-length 15
bad   np2_layers_not_div_pp   "--num-layers (3) must be divisible by --pipeline-model-parallel-size (2)" $MPIRUN 2 $BIN "${M[@]}" --pipeline-model-parallel-size 2 --num-layers 3
bad   np4_global_batch_dp     "--global-batch-size (12) must be divisible by --micro-batch-size (2) x data-parallel size (4)" $MPIRUN 4 $BIN "${M[@]}" --global-batch-size 12
bad   np2_virtual_pp_not_div  "layers per pipeline stage (2) must be divisible by --num-layers-per-virtual-pipeline-stage (3)" $MPIRUN 2 $BIN "${M[@]}" --pipeline-model-parallel-size 2 --num-layers-per-virtual-pipeline-stage 3
bad   np2_interleaved_m_not_div_pp "interleaved 1F1B needs the number of micro-batches (3) divisible by --pipeline-model-parallel-size (2)" $MPIRUN 2 $BIN "${M[@]}" --pipeline-model-parallel-size 2 --num-layers-per-virtual-pipeline-stage 1 --global-batch-size 6

section="--config files"
# ---- --config files -----------------------------------------------------------------
bad   config_missing_file     "--config $F/none.conf: cannot open" $BIN "${M[@]}" --config "$F/none.conf"
bad   config_directory        "--config $F/adir" $BIN "${M[@]}" --config "$F/adir"
bad   config_no_value         "--config needs a file" $BIN "${M[@]}" --config
bad   config_value_is_a_flag  "--config needs a file" $BIN --config --train-iters 1
bad   config_nested           "nested --config is not allowed" $BIN "${M[@]}" --config "$F/nested.conf"
bad   config_non_flag_word    "expected a flag, got 'hidden-size'" $BIN "${M[@]}" --config "$F/word.conf"
bad   config_bad_value        "--config $F/badval.conf: --num-layers expects an integer, got 'four'" $BIN "${M[@]}" --config "$F/badval.conf"
bad   config_missing_value    "--config $F/noval.conf: --lr needs a value" $BIN "${M[@]}" --config "$F/noval.conf"
bad   config_unknown_flag     "--config $F/unknown.conf: unknown flag '--hiden-size'" $BIN "${M[@]}" --config "$F/unknown.conf"
bad   config_long_line        "line longer than 4095 characters" $BIN "${M[@]}" --config "$F/long.conf"
bad   config_nul_byte         "contains a NUL byte" $BIN "${M[@]}" --config "$F/nul.conf"
good  control_config_4095_chars $BIN "${M[@]}" --config "$F/longest.conf" --train-iters 1

section="Token files (--data-path, --train-data-path, --valid-data-path)"
# ---- token files ------------------------------------------------------------------------
# The tiny model's flags with another training file (the last --train-data-path wins).
bad   tokens_missing          "$F/none.bin: cannot open token file" $BIN "${M[@]}" --train-data-path "$F/none.bin"
bad   tokens_directory        "$F/adir: is a directory" $BIN "${M[@]}" --train-data-path "$F/adir"
bad   tokens_fifo             "$F/fifo: not a regular file" $BIN "${M[@]}" --train-data-path "$F/fifo"
bad   tokens_dev_null         "/dev/null: not a regular file" $BIN "${M[@]}" --train-data-path /dev/null
bad   tokens_empty            "$F/tok_empty.bin" $BIN "${M[@]}" --train-data-path "$F/tok_empty.bin"
bad   tokens_truncated_header "$F/tok_trunc.bin: truncated header" $BIN "${M[@]}" --train-data-path "$F/tok_trunc.bin"
bad   tokens_wrong_magic      "$F/tok_magic.bin: bad magic 12345" $BIN "${M[@]}" --train-data-path "$F/tok_magic.bin"
bad   tokens_model_file       "$F/model.bin: is an llm.c model file" $BIN "${M[@]}" --train-data-path "$F/model.bin"
bad   tokens_wrong_version    "$F/tok_version.bin: unsupported version 3" $BIN "${M[@]}" --train-data-path "$F/tok_version.bin"
bad   tokens_header_more      "$F/tok_more.bin: header says 250 tokens" $BIN "${M[@]}" --train-data-path "$F/tok_more.bin"
bad   tokens_header_fewer     "$F/tok_fewer.bin: header says 150 tokens" $BIN "${M[@]}" --train-data-path "$F/tok_fewer.bin"
bad   tokens_header_negative  "$F/tok_count.bin: header says -5 tokens" $BIN "${M[@]}" --train-data-path "$F/tok_count.bin"
bad   tokens_id_over_vocab    "$F/tok_bigid.bin: token 100 has id 300 >= vocabulary size 256" $BIN "${M[@]}" --train-data-path "$F/tok_bigid.bin"
bad   tokens_v2_id_over_vocab "$F/tok_v2_bigid.bin: token 50 has id 2147483655" $BIN "${M[@]}" --train-data-path "$F/tok_v2_bigid.bin"
bad   tokens_vocab_flag_small "${C}_train.bin: token" $BIN "${M[@]}" --vocab-size 40
bad   tokens_too_few          "$F/tok_short.bin: the training split has 10 tokens, fewer than --seq-length + 1 (17)" $BIN "${M[@]}" --train-data-path "$F/tok_short.bin"
bad   tokens_split_too_few    "the training split has" $BIN "${M[@]/--train-data-path/--data-path}" --split 1,9999,0
bad   valid_missing           "$F/none.bin: cannot open token file" $BIN "${M[@]}" --valid-data-path "$F/none.bin"
bad   eval_without_valid      "--eval-interval 5 needs a validation split" $BIN "${M[@]}" --eval-interval 5
bad   eval_split_zero_valid   "--eval-interval 5 needs a validation split" $BIN "${M[@]/--train-data-path/--data-path}" --split 1,0,0 --eval-interval 5
bad   eval_valid_too_short    "--eval-interval 5 needs a validation split" $BIN "${M[@]}" --valid-data-path "$F/tok_short.bin" --eval-interval 5
bad   np2_tokens_wrong_magic  "$F/tok_magic.bin: bad magic" $MPIRUN 2 $BIN "${M[@]}" --train-data-path "$F/tok_magic.bin"

section="llm.c model files (--init-from)"
# ---- llm.c model files (--init-from) ---------------------------------------------------
good  control_init_from                          $BIN "${M[@]}" --train-iters 1 --init-from "$F/model.bin"
good  np2_control_init_from                      $MPIRUN 2 $BIN "${M[@]}" --train-iters 1 --init-from "$F/model.bin" --tensor-model-parallel-size 2
bad   model_missing           "--init-from $F/none.bin: cannot open model file" $BIN "${M[@]}" --init-from "$F/none.bin"
bad   model_directory         "--init-from $F/adir: a directory without config.json" $BIN "${M[@]}" --init-from "$F/adir"
bad   model_fifo              "--init-from $F/fifo: not a regular file" $BIN "${M[@]}" --init-from "$F/fifo"
bad   model_empty             "--init-from $F/tok_empty.bin: truncated header" $BIN "${M[@]}" --init-from "$F/tok_empty.bin"
bad   model_truncated_header  "--init-from $F/m_trunc_hdr.bin: truncated header" $BIN "${M[@]}" --init-from "$F/m_trunc_hdr.bin"
bad   model_truncated_data    "--init-from $F/m_trunc_data.bin: header implies" $BIN "${M[@]}" --init-from "$F/m_trunc_data.bin"
bad   model_extra_bytes       "--init-from $F/m_extra.bin: header implies" $BIN "${M[@]}" --init-from "$F/m_extra.bin"
bad   model_wrong_magic       "--init-from $F/m_magic.bin: bad magic 12345" $BIN "${M[@]}" --init-from "$F/m_magic.bin"
bad   model_token_file        "--init-from ${C}_train.bin: is an llm.c token file" $BIN "${M[@]}" --init-from "${C}_train.bin"
bad   model_wrong_version     "--init-from $F/m_version.bin: unsupported version 5" $BIN "${M[@]}" --init-from "$F/m_version.bin"
bad   model_header_size       "--init-from $F/m_layers3.bin: header implies" $BIN "${M[@]}" --init-from "$F/m_layers3.bin"
bad   model_zero_layers       "--init-from $F/m_layers0.bin: implausible header" $BIN "${M[@]}" --init-from "$F/m_layers0.bin"
bad   model_heads_not_div     "--init-from $F/m_heads.bin: implausible header" $BIN "${M[@]}" --init-from "$F/m_heads.bin"
bad   model_padded_vocab      "--init-from $F/m_vp.bin: implausible header" $BIN "${M[@]}" --init-from "$F/m_vp.bin"
bad   model_negative_maxT     "--init-from $F/m_neg.bin: implausible header" $BIN "${M[@]}" --init-from "$F/m_neg.bin"
bad   model_huge_channels     "--init-from $F/m_huge.bin: implausible header" $BIN "${M[@]}" --init-from "$F/m_huge.bin"
bad   model_flag_disagrees    "--num-layers 3 disagrees with --init-from $F/model.bin, whose header says 4" $BIN "${M[@]}" --num-layers 3 --init-from "$F/model.bin"
bad   model_vocab_disagrees   "--vocab-size 300 disagrees with --init-from" $BIN "${M[@]}" --vocab-size 300 --init-from "$F/model.bin"
bad   model_seq_over_positions "--seq-length 32 exceeds the 16 positions of --init-from $F/model.bin" $BIN "${M[@]}" --seq-length 32 --init-from "$F/model.bin"
bad   model_nan_weight        "--init-from $F/m_nan.bin: non-finite weight in tensor wte.weight" $BIN "${M[@]}" --init-from "$F/m_nan.bin"
bad   model_inf_last_weight   "--init-from $F/m_inf_last.bin: non-finite weight in tensor ln_f.bias" $BIN "${M[@]}" --init-from "$F/m_inf_last.bin"
bad   np4_model_nan_weight    "--init-from $F/m_nan.bin: non-finite weight in tensor wte.weight" $MPIRUN 4 $BIN "${M[@]}" --init-from "$F/m_nan.bin" --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2
section="Checkpoints (--load)"
# ---- checkpoints (--load): a valid one, then corrupted copies -------------------
timeout 60 $BIN "${M[@]}" --train-iters 1 --save "$F/ck" > "$F/ck.log" 2>&1
I=iter_0000001
mkck() { rm -rf "${F:?}/$1"; cp -r "$F/ck" "$F/$1"; }
mkck ck_trunc;   truncate -s 100 "$F/ck_trunc/$I/model.safetensors"
mkck ck_hdr;     printf '\377\377\377\377\377\377\377\177' | dd of="$F/ck_hdr/$I/model.safetensors" conv=notrunc status=none
mkck ck_json;    printf '{"x' | dd of="$F/ck_json/$I/model.safetensors" bs=1 seek=8 conv=notrunc status=none
mkck ck_latest;  echo banana > "$F/ck_latest/latest_checkpointed_iteration.txt"
mkck ck_noiter;  echo 7 > "$F/ck_noiter/latest_checkpointed_iteration.txt"
mkck ck_dir;     rm "$F/ck_dir/$I/model.safetensors"; mkdir "$F/ck_dir/$I/model.safetensors"
mkck ck_noopt;   rm "$F/ck_noopt/$I/optimizer.safetensors"
mkck ck_empty;   : > "$F/ck_empty/$I/optimizer.safetensors"
mkck ck_nan;     printf '\000\000\300\177' | dd of="$F/ck_nan/$I/model.safetensors" bs=1 seek=$(( $(stat -c %s "$F/ck_nan/$I/model.safetensors") - 4 )) conv=notrunc status=none
good  control_load_checkpoint                    $BIN "${M[@]}" --train-iters 2 --load "$F/ck"
bad   ckpt_truncated          "$F/ck_trunc/$I/model.safetensors" $BIN "${M[@]}" --train-iters 2 --load "$F/ck_trunc"
bad   ckpt_header_length      "$F/ck_hdr/$I/model.safetensors" $BIN "${M[@]}" --train-iters 2 --load "$F/ck_hdr"
bad   ckpt_bad_json           "$F/ck_json/$I/model.safetensors" $BIN "${M[@]}" --train-iters 2 --load "$F/ck_json"
bad   ckpt_latest_garbage     "expected a positive iteration number" $BIN "${M[@]}" --train-iters 2 --load "$F/ck_latest"
bad   ckpt_latest_names_missing "iter_0000007/model.safetensors" $BIN "${M[@]}" --train-iters 9 --load "$F/ck_noiter"
bad   ckpt_directory_as_file  "$F/ck_dir/$I/model.safetensors" $BIN "${M[@]}" --train-iters 2 --load "$F/ck_dir"
bad   ckpt_optimizer_missing  "$F/ck_noopt/$I/optimizer.safetensors" $BIN "${M[@]}" --train-iters 2 --load "$F/ck_noopt"
bad   ckpt_optimizer_empty    "$F/ck_empty/$I/optimizer.safetensors" $BIN "${M[@]}" --train-iters 2 --load "$F/ck_empty"
bad   ckpt_nan_weight         "holds a non-finite value" $BIN "${M[@]}" --train-iters 2 --load "$F/ck_nan"
bad   ckpt_shape_mismatch     "checkpoint has num_layers 4 but --num-layers is 2" $BIN "${M[@]}" --train-iters 2 --num-layers 2 --load "$F/ck"
bad   ckpt_hidden_mismatch    "checkpoint has hidden_size 32 but --hidden-size is 64" $BIN "${M[@]}" --train-iters 2 --hidden-size 64 --load "$F/ck"
bad   ckpt_load_is_a_file     "not a directory" $BIN "${M[@]}" --train-iters 2 --load "$F/model.bin"
bad   np4_ckpt_nan_weight     "holds a non-finite value" $MPIRUN 4 $BIN "${M[@]}" --train-iters 2 --load "$F/ck_nan" --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2

# ---- hostile inputs and faults (issue 13): special files, several ranks, ----------
# outputs that collide with inputs, the writability probe, sizes, strict
# numbers in the trainer and the tools, checkpoint metadata, silent no-ops.
# Each case that could touch a file gets its own directory (own_dir), with a
# canary and the files it must leave alone; the suite checks them after.
cp "${C}_train.bin" "$F/tokcopy.bin"
ln -sf "$F/fifo" "$F/link_to_fifo"
ln -sf /dev/zero "$F/link_to_zero"
truncate -s 3G "$F/sparse3g.bin"                     # 3 GB of zeros costing no disk
printf '%s\n' "--train-iters 1" > "$F/one_iter.conf"
# Checkpoints with changed metadata: the header rewritten, the data kept.
ckmeta() {  # ckmeta NAME KEY VALUE [KEY VALUE...]: a copy of ck with metadata changed
  local n=$1; shift
  mkck "$n"
  python3 - "$F/$n/$I/model.safetensors" "$@" <<'PY'
import json, struct, sys
p = sys.argv[1]; kv = sys.argv[2:]
b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); data = b[8 + n:]
for k, v in zip(kv[::2], kv[1::2]): h["__metadata__"][k] = v
t = json.dumps(h).encode(); t += b" " * (-len(t) % 8)
open(p, "wb").write(struct.pack("<Q", len(t)) + t + data)
PY
}
ckmeta ck_4abc num_layers 4abc
ckmeta ck_negcs consumed_samples -8
ckmeta ck_iter_space iteration " 1"
ckmeta ck_optsteps optimizer_steps 2
ckmeta ck_schedsamples scheduler_samples 9
: > "$F/plain_file"; mkdir -p "$F/empty_ck"
ckmeta ck_heads0 num_attention_heads 0
ckmeta ck_vocab0 vocab_size 0 padded_vocab_size 0
ckmeta ck_hidden_huge hidden_size 2147483647
mkck ck_latest_fifo;  rm "$F/ck_latest_fifo/latest_checkpointed_iteration.txt"; mkfifo "$F/ck_latest_fifo/latest_checkpointed_iteration.txt"
mkck ck_tensor_fifo;  rm "$F/ck_tensor_fifo/$I/model.safetensors"; mkfifo "$F/ck_tensor_fifo/$I/model.safetensors"
mkck ck_sparse;       rm "$F/ck_sparse/$I/model.safetensors"; truncate -s 3G "$F/ck_sparse/$I/model.safetensors"
mkck ck_latest_zero;  rm "$F/ck_latest_zero/latest_checkpointed_iteration.txt"; ln -s /dev/zero "$F/ck_latest_zero/latest_checkpointed_iteration.txt"
mkck ck_at1                                          # resumed at its own iteration: nothing to train
rm -rf "$F/hf_fifo"; mkdir -p "$F/hf_fifo"; mkfifo "$F/hf_fifo/config.json"
python3 - "$F" <<'PY'
import os, struct, sys
F = sys.argv[1]
m = bytearray(open(os.path.join(F, "model.bin"), "rb").read())
h = list(struct.unpack("<256i", bytes(m[:1024])))
h[7] = 1 << 30                                       # padded vocabulary 2^30 for 256 tokens
open(os.path.join(F, "m_vp_huge.bin"), "wb").write(struct.pack("<256i", *h) + bytes(m[1024:]))
PY
printf 'name bad\ndevice_flops 1e12abc\nranks_per_node 1\nintra_bw 1e10\nintra_latency 0\ninter_bw 1e9\ninter_latency 0\n' > "$F/bad.machine"

section="Hostile inputs: special files (FIFOs, devices, sparse files, symlinks)"
bad   config_fifo             "--config $F/fifo: not a regular file" $BIN "${M[@]}" --config "$F/fifo"
unsafe config_dev_zero
bad   config_dev_zero         "--config /dev/zero: not a regular file" $BIN "${M[@]}" --config /dev/zero
unsafe config_symlink_to_zero
bad   config_symlink_to_zero  "--config $F/link_to_zero: not a regular file" $BIN "${M[@]}" --config "$F/link_to_zero"
unsafe config_stdin_dev_zero
bad   config_stdin_dev_zero   "--config /dev/stdin: more than 1048576 bytes" bash -c 'exec "$0" "$@" --config /dev/stdin < /dev/zero' $BIN "${M[@]}"
good  control_config_stdin    bash -c 'printf -- "--train-iters 1\n" | exec "$0" "$@" --config -' $BIN "${M[@]}"
bad   tokens_symlink_to_fifo  "$F/link_to_fifo: not a regular file" $BIN "${M[@]}" --train-data-path "$F/link_to_fifo"
bad   tokens_sparse_3g        "$F/sparse3g.bin: bad magic 0" $BIN "${M[@]}" --train-data-path "$F/sparse3g.bin"
bad   model_sparse_3g         "--init-from $F/sparse3g.bin: bad magic 0" $BIN "${M[@]}" --init-from "$F/sparse3g.bin"
bad   hf_config_fifo          "$F/hf_fifo/config.json: not a regular file" $BIN "${M[@]}" --init-from "$F/hf_fifo"
bad   ckpt_latest_fifo        "latest_checkpointed_iteration.txt: not a regular file" $BIN "${M[@]}" --train-iters 2 --load "$F/ck_latest_fifo"
bad   ckpt_latest_dev_zero    "latest_checkpointed_iteration.txt: not a regular file" $BIN "${M[@]}" --train-iters 2 --load "$F/ck_latest_zero"
bad   ckpt_tensor_fifo        "$F/ck_tensor_fifo/$I/model.safetensors: not a regular file" $BIN "${M[@]}" --train-iters 2 --load "$F/ck_tensor_fifo"
unsafe ckpt_tensor_sparse_3g
bad   ckpt_tensor_sparse_3g   "$F/ck_sparse/$I/model.safetensors: " $BIN "${M[@]}" --train-iters 2 --load "$F/ck_sparse"
bad   metrics_file_fifo       "--metrics-file $F/fifo: exists and is not a regular file" $BIN "${M[@]}" --train-iters 1 --metrics-file "$F/fifo"
bad   generate_latest_fifo    "latest_checkpointed_iteration.txt: not a regular file" $TL/generate --load "$F/ck_latest_fifo" --tokens 1
bad   plan_machine_fifo       "--machine $F/fifo: not a regular file" $TL/plan --sweep --world-size 4 --memory-gb 8 --machine "$F/fifo" "${M[@]}"

section="Hostile inputs: rank 0 reads and broadcasts (2 and 4 ranks)"
good  np2_control_config_stdin bash -c 'printf -- "--train-iters 1\n" | exec "$0" "$@" --config /dev/stdin' $MPIRUN 2 $BIN "${M[@]}"
bad   np2_config_stdin_bad_value "--config /dev/stdin: --num-layers expects an integer, got 'x'" bash -c 'printf -- "--num-layers x\n" | exec "$0" "$@" --config /dev/stdin' $MPIRUN 2 $BIN "${M[@]}"
unsafe np4_config_dev_zero
bad   np4_config_dev_zero     "--config /dev/zero: not a regular file" $MPIRUN 4 $BIN "${M[@]}" --config /dev/zero
bad   np2_config_fifo         "--config $F/fifo: not a regular file" $MPIRUN 2 $BIN "${M[@]}" --config "$F/fifo"
bad   np4_ckpt_tensor_fifo    "model.safetensors: not a regular file" $MPIRUN 4 $BIN "${M[@]}" --train-iters 2 --load "$F/ck_tensor_fifo" --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2

section="Hostile inputs: outputs checked up front (devices, collisions with inputs and each other)"
unsafe export_llmc_dev_full
bad   export_llmc_dev_full    "--export-llmc /dev/full: exists and is not a regular file" $BIN "${M[@]}" --train-iters 1 --export-llmc /dev/full
d=$(own_dir export_llmc_onto_tokens); cp "$F/tokcopy.bin" "$d/tok.bin"
bad   export_llmc_onto_tokens "--export-llmc $d/tok.bin is the input --train-data-path" $BIN "${M[@]}" --train-iters 1 --train-data-path "$d/tok.bin" --export-llmc "$d/tok.bin"
d=$(own_dir timeline_onto_metrics); echo '{"iteration": 0}' > "$d/x.json"
bad   timeline_onto_metrics   "--timeline (its .json) $d/x.json and --metrics-file $d/x.json are the same file" $BIN "${M[@]}" --train-iters 1 --timeline "$d/x.svg" --metrics-file "$d/x.json"
d=$(own_dir timeline_onto_init_from); cp "$F/model.bin" "$d/model.bin"
bad   timeline_onto_init_from "--timeline $d/model.bin is the input --init-from" $BIN "${M[@]}" --train-iters 1 --init-from "$d/model.bin" --timeline "$d/model.bin"
d=$(own_dir dump_params_symlink_to_input); cp "$F/tokcopy.bin" "$d/tok.bin"; ln -s "$d/tok.bin" "$d/out.st"
bad   dump_params_symlink_to_input "--dump-params $d/out.st is the input --train-data-path" $BIN "${M[@]}" --train-iters 1 --train-data-path "$d/tok.bin" --dump-params "$d/out.st"
d=$(own_dir metrics_onto_config); cp "$F/one_iter.conf" "$d/c.conf"
bad   metrics_onto_config     "--metrics-file $d/c.conf is the input --config" $BIN "${M[@]}" --config "$d/c.conf" --metrics-file "$d/c.conf"
d=$(own_dir save_onto_file); echo data > "$d/file"
bad   save_onto_file          "--save $d/file: exists and is not a directory" $BIN "${M[@]}" --train-iters 1 --save "$d/file"
d=$(own_dir dump_dir_onto_file); echo data > "$d/file"
bad   dump_dir_onto_file      "--dump-dir $d/file: exists and is not a directory" $BIN "${M[@]}" --dump-step 1 --dump-dir "$d/file"
bad   dump_params_no_dir      "--dump-params $F/nodir/p.st: its directory $F/nodir does not exist" $BIN "${M[@]}" --dump-params "$F/nodir/p.st"
bad   export_llmc_is_dir      "--export-llmc $F/adir: is a directory" $BIN "${M[@]}" --export-llmc "$F/adir"
d=$(own_dir export_hf_onto_load); cp -r "$F/ck/." "$d/"
bad   export_hf_onto_load     "--export-hf $d is the input --load" $BIN "${M[@]}" --train-iters 2 --load "$d" --export-hf "$d"
d=$(own_dir np2_export_llmc_onto_tokens); cp "$F/tokcopy.bin" "$d/tok.bin"
bad   np2_export_llmc_onto_tokens "--export-llmc $d/tok.bin is the input --train-data-path" $MPIRUN 2 $BIN "${M[@]}" --train-data-path "$d/tok.bin" --export-llmc "$d/tok.bin"
d=$(own_dir np4_timeline_onto_metrics); echo '{"iteration": 0}' > "$d/t.json"
bad   np4_timeline_onto_metrics "are the same file" $MPIRUN 4 $BIN "${M[@]}" --timeline "$d/t.svg" --metrics-file "$d/t.json" --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2

section="Hostile inputs: the writability probe never touches PATH.tmp"
d=$(own_dir probe_keeps_user_tmp); echo "the user's notes" > "$d/out.bin.tmp"
bad   probe_keeps_user_tmp    "--dump-params $F/nodir/p.st" $BIN "${M[@]}" --export-llmc "$d/out.bin" --dump-params "$F/nodir/p.st"
d=$(own_dir probe_keeps_user_timeline_tmp); echo "the user's notes" > "$d/t.svg.tmp"; echo keep > "$d/t.json.tmp"
bad   probe_keeps_user_timeline_tmp "--dump-params $F/nodir/p.st" $BIN "${M[@]}" --timeline "$d/t.svg" --dump-params "$F/nodir/p.st"

section="Hostile inputs: sizes (bounded, products checked before any allocation)"
bad   model_padded_vocab_huge "--init-from $F/m_vp_huge.bin: implausible header" $BIN "${M[@]}" --init-from "$F/m_vp_huge.bin"
bad   max_positions_huge      "--max-position-embeddings must be in [1, 1048576]" $BIN "${M[@]}" --max-position-embeddings 2000000000
bad   memory_does_not_fit     "GiB of the job's smallest machine" $BIN "${M[@]}" --vocab-size 2000000000 --make-vocab-size-divisible-by 1 --hidden-size 65536
bad   np2_memory_does_not_fit "GiB of the job's smallest machine" $MPIRUN 2 $BIN "${M[@]}" --num-layers 4096 --hidden-size 65536 --pipeline-model-parallel-size 2
bad   ckpt_hidden_huge_generate "--hidden-size must be in [1, 65536]" $TL/generate --load "$F/ck_hidden_huge" --tokens 1

section="Hostile inputs: one strict number parser (trainer, checkpoints, tools)"
bad   seed_leading_space      "--seed expects a non-negative integer, got ' -1'" $BIN "${M[@]}" --seed " -1"
bad   layers_leading_space    "--num-layers expects an integer, got ' 4'" $BIN "${M[@]}" --num-layers " 4"
bad   global_batch_zero       "--global-batch-size must be >= 1, got 0" $BIN "${M[@]}" --global-batch-size 0
bad   lr_hex_suffix           "--lr expects a finite number, got '1e-3x'" $BIN "${M[@]}" --lr 1e-3x
good  control_lr_subnormal    $BIN "${M[@]}" --train-iters 1 --lr 1e-310
bad   ckpt_meta_4abc          "checkpoint has num_layers 4abc" $BIN "${M[@]}" --train-iters 2 --load "$F/ck_4abc"
bad   ckpt_meta_negative_consumed "consumed_samples '-8'" $BIN "${M[@]}" --train-iters 2 --load "$F/ck_negcs"
bad   ckpt_meta_iteration_space "iteration ' 1'" $BIN "${M[@]}" --train-iters 2 --load "$F/ck_iter_space"
bad   ckpt_meta_optimizer_steps_past_iteration "optimizer_steps '2' is not an integer in [0, iteration 1]" $BIN "${M[@]}" --train-iters 2 --load "$F/ck_optsteps"
bad   ckpt_meta_scheduler_samples_past_consumed "scheduler_samples '9' is not an integer in [0, consumed_samples 8]" $BIN "${M[@]}" --train-iters 2 --load "$F/ck_schedsamples"
bad   pretrained_not_a_directory "--pretrained-checkpoint $F/plain_file: not a directory" $BIN "${M[@]}" --train-iters 2 --pretrained-checkpoint "$F/plain_file" --load "$F/empty_ck" --save "$F/empty_ck"
# Sample-based training and the batch ramp (Megatron's rules). MS: the tiny
# model without its iteration counts.
MS=(); skip=0
for w in "${M[@]}"; do
  if [ $skip = 1 ]; then skip=0; continue; fi
  case "$w" in --train-iters|--lr-warmup-iters) skip=1; continue;; esac
  MS+=("$w")
done
bad   samples_and_iters       "give --train-samples or --train-iters, not both" $BIN "${M[@]}" --train-samples 80
bad   rampup_without_samples  "--rampup-batch-size needs --train-samples" $BIN "${M[@]}" --rampup-batch-size 4 4 16
bad   warmup_samples_alone    "--lr-warmup-samples and --lr-decay-samples count samples: they need --train-samples" $BIN "${M[@]}" --lr-warmup-samples 16
bad   samples_with_iter_lr    "--train-samples counts the LR schedule in samples" $BIN "${MS[@]}" --train-samples 80 --lr-warmup-iters 2
bad   rampup_two_values       "--rampup-batch-size needs three integers" $BIN "${MS[@]}" --train-samples 80 --rampup-batch-size 4 4
bad   rampup_start_not_below  "must exceed the start by a whole number of increments" $BIN "${MS[@]}" --train-samples 80 --rampup-batch-size 8 2 16
bad   rampup_uneven_increments "must exceed the start by a whole number of increments" $BIN "${MS[@]}" --train-samples 80 --rampup-batch-size 2 4 16
bad   rampup_not_whole_micro_batches "multiples of --micro-batch-size x data-parallel size (2)" $BIN "${MS[@]}" --train-samples 80 --rampup-batch-size 3 5 16 --global-batch-size 8
bad   rampup_zero_increment   "--rampup-batch-size 4 0 16: the start, the increment and the samples must be >= 1" $BIN "${MS[@]}" --train-samples 80 --rampup-batch-size 4 0 16
bad   rampup_zero_samples     "--rampup-batch-size 2 2 0: the start, the increment and the samples must be >= 1" $BIN "${MS[@]}" --train-samples 80 --rampup-batch-size 2 2 0
bad   rampup_too_many_steps   "the ramp would take up to 2147483648 iterations; at most 67108864 are supported" $BIN "${MS[@]}" --micro-batch-size 1 --global-batch-size 2 --train-samples 4294967296 --rampup-batch-size 1 1 2147483647
bad   train_samples_zero      "--train-samples must be >= 1, got 0" $BIN "${MS[@]}" --train-samples 0
bad   train_samples_2_63      "--train-samples 9223372036854775808 is more than 2^31 - 1 iterations at --global-batch-size 8" $BIN "${MS[@]}" --train-samples 9223372036854775808
bad   train_samples_max       "--train-samples 18446744073709551615 is more than 2^31 - 1 iterations" $BIN "${MS[@]}" --train-samples 18446744073709551615
bad   lr_decay_samples_zero   "--lr-decay-samples must be >= 1, got 0" $BIN "${MS[@]}" --train-samples 80 --lr-decay-samples 0
bad   lr_decay_iters_zero     "--lr-decay-iters must be >= 1, got 0" $BIN "${M[@]}" --lr-decay-iters 0
bad   decay_samples_le_warmup "--lr-decay-samples (4) must exceed --lr-warmup-samples (8)" $BIN "${MS[@]}" --train-samples 80 --lr-decay-style inverse-square-root --lr-warmup-samples 8 --lr-decay-samples 4
bad   decay_iters_le_warmup_constant "--lr-decay-iters (3) must exceed --lr-warmup-iters (5)" $BIN "${MS[@]}" --train-iters 10 --lr-decay-style constant --lr-warmup-iters 5 --lr-decay-iters 3
say   warmup_as_long_as_the_run "note: the warm-up (--lr-warmup-iters 4) is as long as the run (4): the LR never reaches --lr" $TL/plan --world-size 1 "${MS[@]}" --train-iters 4 --lr-warmup-iters 4
bad   hcp_sizes_product_without_a2a_p2p "--hierarchical-context-parallel-sizes 3 5: the product must be --context-parallel-size (2)" $TL/plan --world-size 2 "${M[@]}" --context-parallel-size 2 --hierarchical-context-parallel-sizes 3 5
bad   hcp_sizes_negative_without_cp "--hierarchical-context-parallel-sizes 0 -7: the product must be --context-parallel-size (1)" $BIN "${M[@]}" --hierarchical-context-parallel-sizes 0 -7
bad   kv_channels_own_size    "--kv-channels 16: only --hidden-size / --num-attention-heads (8) is built here" $BIN "${M[@]}" --kv-channels 16
bad   exit_duration_negative  "--exit-duration-in-mins must be >= 0, got -1" $BIN "${M[@]}" --exit-duration-in-mins -1
bad   data_path_blend         "--data-path 0.7 a: blends of several datasets are not built here" $BIN "${M[@]}" --data-path 0.7 a 0.3 b
bad   data_path_two_prefixes  "--data-path a b: blends of several datasets are not built here" $BIN "${M[@]}" --data-path a b
bad   apply_layernorm_1p      "--apply-layernorm-1p: LayerNorm weights stored as 1 + w (zero-centred gamma) are not built" $BIN "${M[@]}" --apply-layernorm-1p
bad   samples_below_one_batch "--train-samples 4 gives 0 iterations" $BIN "${MS[@]}" --train-samples 4
# --lr-warmup-fraction / --lr-warmup-init (Megatron: one warm-up flag; the
# scheduler asserts warm-up < decay and init_lr <= lr).
bad   warmup_fraction_and_iters "give one of --lr-warmup-fraction and --lr-warmup-iters" $BIN "${M[@]}" --lr-warmup-fraction 0.1
bad   warmup_fraction_and_samples "give one of --lr-warmup-fraction and --lr-warmup-samples" $BIN "${MS[@]}" --train-samples 80 --lr-warmup-samples 16 --lr-warmup-fraction 0.1
bad   warmup_fraction_one     "--lr-warmup-fraction must be in [0, 1), got 1" $BIN "${MS[@]}" --train-iters 4 --lr-warmup-fraction 1
bad   warmup_fraction_negative "--lr-warmup-fraction must be in [0, 1), got -0.1" $BIN "${MS[@]}" --train-iters 4 --lr-warmup-fraction -0.1
bad   warmup_fraction_nan     "--lr-warmup-fraction" $BIN "${MS[@]}" --train-iters 4 --lr-warmup-fraction nan
bad   warmup_init_over_lr     "--lr-warmup-init (0.01) must be in [0, --lr (0.001)]" $BIN "${M[@]}" --lr-warmup-init 1e-2
bad   warmup_init_negative    "--lr-warmup-init (-1e-05) must be in [0, --lr (0.001)]" $BIN "${M[@]}" --lr-warmup-init -1e-5
# WSD and the weight decay's schedule (Megatron: WSD asserts its annealing
# length; start/end go with a rising style only; end >= start >= 0).
bad   wsd_without_length      "--lr-decay-style WSD needs the annealing phase's length: --lr-wsd-decay-iters N" $BIN "${M[@]}" --lr-decay-style WSD
bad   wsd_samples_without_samples "--lr-wsd-decay-samples counts samples: it needs --train-samples" $BIN "${M[@]}" --lr-decay-style WSD --lr-wsd-decay-samples 16
say   wsd_iters_ignored_in_samples_without_wsd "note: --lr-wsd-decay-style, --lr-wsd-decay-iters and --lr-wsd-decay-samples are read only with --lr-decay-style WSD" $TL/plan --world-size 1 "${MS[@]}" --train-samples 80 --lr-wsd-decay-iters 2
bad   wsd_iters_with_samples  "give --lr-wsd-decay-samples, not --lr-wsd-decay-iters" $BIN "${MS[@]}" --train-samples 80 --lr-decay-style WSD --lr-wsd-decay-iters 2
bad   wsd_samples_need_length "--lr-decay-style WSD needs the annealing phase's length: --lr-wsd-decay-samples N" $BIN "${MS[@]}" --train-samples 80 --lr-decay-style WSD
bad   wsd_negative            "--lr-wsd-decay-iters must be >= 0, got -1" $BIN "${M[@]}" --lr-decay-style WSD --lr-wsd-decay-iters -1
bad   wsd_style_unknown       "--lr-wsd-decay-style must be exponential, linear, cosine or minus_sqrt, got '1-sqrt'" $BIN "${M[@]}" --lr-decay-style WSD --lr-wsd-decay-iters 2 --lr-wsd-decay-style 1-sqrt
bad   wd_ends_with_constant   "--start-weight-decay and --end-weight-decay need --weight-decay-incr-style linear or cosine" $BIN "${M[@]}" --start-weight-decay 0 --end-weight-decay 0.1
bad   wd_incr_without_end     "--weight-decay-incr-style cosine needs --start-weight-decay and --end-weight-decay" $BIN "${M[@]}" --weight-decay-incr-style cosine --start-weight-decay 0
bad   wd_end_below_start      "--end-weight-decay (0.01) must be >= --start-weight-decay (0.1) >= 0" $BIN "${M[@]}" --weight-decay-incr-style linear --start-weight-decay 0.1 --end-weight-decay 0.01
bad   wd_start_negative       "--end-weight-decay (0.1) must be >= --start-weight-decay (-0.1) >= 0" $BIN "${M[@]}" --weight-decay-incr-style linear --start-weight-decay -0.1 --end-weight-decay 0.1
bad   wd_incr_style_unknown   "--weight-decay-incr-style must be constant, linear or cosine, got 'step'" $BIN "${M[@]}" --weight-decay-incr-style step
say   wsd_flags_ignored_without_wsd "note: --lr-wsd-decay-style, --lr-wsd-decay-iters and --lr-wsd-decay-samples are read only with --lr-decay-style WSD" $TL/plan --world-size 1 "${M[@]}" --lr-wsd-decay-iters 4
bad   decoupled_negative      "--decoupled-lr (-0.001) and --decoupled-min-lr (0) must be >= 0" $BIN "${M[@]}" --decoupled-lr -1e-3
say   decoupled_min_alone     "note: --decoupled-min-lr is read only with --decoupled-lr; ignored (as Megatron does)" $TL/plan --world-size 1 "${M[@]}" --decoupled-min-lr 1e-4
# Context parallelism's a2a+p2p sizes, judged by tools/plan (the same
# parser; the trainer would need 4 ranks to reach them).
bad   hcp_sizes_missing       "--cp-comm-type a2a+p2p needs --hierarchical-context-parallel-sizes A P" $TL/plan --world-size 4 "${M[@]}" --context-parallel-size 4 --cp-comm-type a2a+p2p
bad   hcp_sizes_product       "--hierarchical-context-parallel-sizes 2 3: the product must be --context-parallel-size (4)" $TL/plan --world-size 4 "${M[@]}" --context-parallel-size 4 --cp-comm-type a2a+p2p --hierarchical-context-parallel-sizes 2 3
bad   hcp_sizes_zero          "--hierarchical-context-parallel-sizes 0 4: the product must be" $TL/plan --world-size 4 "${M[@]}" --context-parallel-size 4 --cp-comm-type a2a+p2p --hierarchical-context-parallel-sizes 0 4
bad   hcp_sizes_one_value     "--hierarchical-context-parallel-sizes needs two integers" $TL/plan --world-size 4 "${M[@]}" --context-parallel-size 4 --cp-comm-type a2a+p2p --hierarchical-context-parallel-sizes 2 --lr 1e-3
bad   hcp_sizes_not_a_number  "--hierarchical-context-parallel-sizes expects an integer" $TL/plan --world-size 4 "${M[@]}" --context-parallel-size 4 --cp-comm-type a2a+p2p --hierarchical-context-parallel-sizes 2 x
say   hcp_sizes_ignored_without_a2a_p2p "note: --hierarchical-context-parallel-sizes is read only with --cp-comm-type a2a+p2p" $TL/plan --world-size 4 "${M[@]}" --context-parallel-size 4 --hierarchical-context-parallel-sizes 2 2
bad   hcp_heads_not_divisible "heads (2) and key/value groups (2) of each TP rank divisible by the all-to-all size (4)" $TL/plan --world-size 4 "${M[@]}" --context-parallel-size 4 --cp-comm-type a2a+p2p --hierarchical-context-parallel-sizes 4 1 --num-attention-heads 2
bad   plan_world_negative     "--world-size needs a whole number >= 1, got '-4'" $TL/plan --world-size -4 "${M[@]}"
bad   plan_world_suffix       "--world-size needs a whole number >= 1, got '4x'" $TL/plan --world-size 4x "${M[@]}"
bad   plan_machine_suffix     "--machine $F/bad.machine:2: the value must be a number" $TL/plan --sweep --world-size 4 --memory-gb 8 --machine "$F/bad.machine" "${M[@]}"
bad   generate_tokens_word    "--tokens expects an integer in [0, 16777216], got 'abc'" $TL/generate --load "$F/ck" --tokens abc
bad   generate_tokens_negative "--tokens expects an integer in [0, 16777216], got '-4'" $TL/generate --load "$F/ck" --tokens -4
bad   generate_seed_space     "--seed expects a non-negative integer, got ' 5'" $TL/generate --load "$F/ck" --seed " 5"
bad   compare_top_suffix      "--top needs a finite number >= 0, got '5x'" $TL/compare "$F/ck/$I/model.safetensors" "$F/ck/$I/model.safetensors" --top 5x
bad   np2_seed_leading_space  "--seed expects a non-negative integer" $MPIRUN 2 $BIN "${M[@]}" --seed " -1"

section="Hostile inputs: tools/generate validates metadata through the trainer's rules"
bad   generate_zero_heads     "--num-attention-heads must be in [1, 65535], got 0" $TL/generate --load "$F/ck_heads0" --tokens 1
bad   generate_zero_vocab     "--vocab-size must be >= 2, got 0" $TL/generate --load "$F/ck_vocab0" --tokens 1
bad   generate_meta_4abc      "--num-layers expects an integer, got '4abc'" $TL/generate --load "$F/ck_4abc" --tokens 1

section="Hostile inputs: no silent no-ops"
say   resume_at_train_iters   "nothing to train: the checkpoint in $F/ck_at1 is at --train-iters 1 already" $BIN "${M[@]}" --train-iters 1 --load "$F/ck_at1"
bad   resume_beyond_train_iters "--train-iters 0 is below the iteration 1 of the checkpoint" $BIN "${M[@]}" --train-iters 0 --load "$F/ck"
bad   dump_step_beyond_train_iters "--dump-step 20 is beyond --train-iters 10" $BIN "${M[@]}" --dump-step 20 --dump-dir "$F/nodump"
bad   dump_step_before_resume "--dump-step 1: the checkpoint in --load $F/ck is already at iteration 1" $BIN "${M[@]}" --train-iters 3 --load "$F/ck" --dump-step 1 --dump-dir "$F/nodump"
bad   eval_suggests_valid_path "tokens (--valid-data-path)" $BIN "${M[@]}" --eval-interval 5
bad   eval_suggests_split     "tokens (--split)" $BIN "${M[@]/--train-data-path/--data-path}" --split 1,0,0 --eval-interval 5

(cd "$T/cases" && mkdir -p "${names[@]/%/.mpi}")
manifest "$F" > "$T/files.before"
for n in "${names[@]}"; do manifest "$T/own/$n" > "$T/cases/$n.before"; done
# The slowest cases (several ranks, then the ones that train) start first, so
# the last few to finish are quick ones.
for n in "${names[@]}"; do [[ $n == np* ]] && launch "$n"; done
for n in "${names[@]}"; do [[ $n == control* ]] && launch "$n"; done
for n in "${names[@]}"; do [[ $n != np* && $n != control* ]] && launch "$n"; done
wait

# ---- verdicts, in table order -------------------------------------------------------------
rows=()
for n in "${names[@]}"; do
  d=$T/cases/$n
  { read -r kind; read -r expect; read -r sect; read -r cmd; } < "$d.case"
  rc="?"; [ -f "$d.rc" ] && read -r rc < "$d.rc"
  lines=()
  while IFS= read -r l || [ -n "$l" ]; do
    [[ $l == note:* || $l == warning:* || $l =~ ^[[:space:]]*$ ]] || lines+=("$l")
  done < "$d.err"
  why=""
  ms=0; [ -f "$d.ms" ] && read -r ms < "$d.ms"
  if [ "$kind" = good ] || [ "$kind" = say ]; then
    [ "$rc" = 0 ] || why="positive control exited $rc: $(tail -n 2 "$d.err" | tr '\n' ' ')"
    [ -z "$why" ] && [ "$kind" = say ] && ! grep -qF -- "$expect" "$d.out" && why="stdout lacks '$expect'"
  else
    if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then why="timed out (hang) after 20 s"
    elif [ "$rc" != 2 ]; then why="exit code $rc, want 2"
    elif [ "${#lines[@]}" != 1 ]; then why="${#lines[@]} lines on stderr, want 1"
    elif [[ "${lines[0]}" != *"$expect"* ]]; then why="stderr line lacks '$expect'"
    fi
    [ -z "$why" ] && [ "$ms" -gt $((CASE_SECONDS * 1000)) ] && why="took $ms ms, more than ${CASE_SECONDS} s"
    [ -n "$why" ] && why="$why; stderr: $(head -c 600 "$d.err" | tr '\n' '|')"
    rows+=("$sect	$n	$cmd	${lines[0]:-}	${#lines[@]}	$rc")
  fi
  if [ -z "$why" ] && [ -d "$T/own/$n" ]; then
    changed=$(diff "$d.before" <(manifest "$T/own/$n") | grep '^[<>]' | head -n 3 | tr '\n' '|')
    [ -n "$changed" ] && why="changed a file it did not own: $changed"
  fi
  if [ -z "$why" ]; then ok "bad_input/$n"; else not_ok "bad_input/$n" "$why"; fi
done
# The scratch files every case read: none changed, none added or removed.
changed=$(diff "$T/files.before" <(manifest "$F") | grep '^[<>]' | head -n 5 | tr '\n' '|')
if [ -z "$changed" ]; then ok bad_input/scratch_files_unchanged; else not_ok bad_input/scratch_files_unchanged "$changed"; fi
# /dev/full is still the device (an --export-llmc /dev/full once replaced it).
if [ -c /dev/full ]; then ok bad_input/dev_full_still_a_device; else not_ok bad_input/dev_full_still_a_device "/dev/full is no longer a character device"; fi

# ---- docs/bad-input.md: what the user sees, from the outputs above -------------------------
# Scratch paths and the tiny model's flags are shortened so the table reads;
# with a second argument, long text (only inputs, never the error line) is cut.
shorten() {
  local x=$1
  x=${x//"$BIN ${M[*]/--train-data-path/--data-path}"/pretrain_gpt TINY(--data-path)}
  x=${x//"$BIN ${M[*]}"/pretrain_gpt TINY}
  x=${x//"$BIN"/pretrain_gpt}
  x=${x//"$F/"/files/}
  x=${x//"$(dirname "$C")/"/}
  x=${x//tools\/mpirun.sh/mpirun.sh}
  [ -n "${2:-}" ] && [ "${#x}" -gt 110 ] && x="${x:0:100}..."
  printf '%s' "${x//|/\\|}"
}
if [ -n "$doc" ]; then
  # Hand-written sections (the tools' own suites check their cases) follow
  # the line "<!-- hand-written -->", and another suite's part of the page
  # (tests/suite_save_faults.sh) the line "<!-- save-faults -->": both kept
  # as they are.
  kept=""
  if [ -f "$doc" ] && grep -qx '<!-- hand-written -->' "$doc"; then kept=$(sed -n '/^<!-- hand-written -->$/,$p' "$doc")
  elif [ -f "$doc" ]; then kept=$(sed -n '/^<!-- save-faults -->$/,$p' "$doc"); fi
  {
    echo "# What bad input looks like"
    echo
    echo "Every bad flag value, inconsistent flag combination, \`--config\` file, token file"
    echo "or llm.c model file (\`--init-from\`) stops the run before training with **exit"
    echo "code 2** and **one line on stderr**, printed by rank 0, that names the flag or"
    echo "file and the rule it breaks (docs/design.md §3). The other ranks print nothing."
    echo "Lines starting with \`note:\` (Megatron flags this build notes: docs/megatron-flags.md) and \`warning:\` are not errors."
    echo
    echo "This page is generated from real runs, not written by hand:"
    echo "\`bash tests/suite_bad_input.sh --doc docs/bad-input.md\`. The same suite checks"
    echo "each case (exit code 2, one line, the expected text) under \`tests/run.sh\`."
    echo "In the input column, \`files/\` stands for the suite's scratch files (valid and"
    echo "deliberately corrupted copies), \`mpirun.sh N\` for \`tools/mpirun.sh N\` (N ranks),"
    echo "and \`TINY\` for the tiny model of \`tests/lib.sh\` (\`TINY(--data-path)\`: the same"
    echo "with \`--data-path\` in place of \`--train-data-path\`); a later flag overrides an earlier one:"
    echo
    echo "    $(shorten "${M[*]}")"
    echo
    echo "The sections named **Hostile inputs** (issue 13) add what a careless user, a hostile"
    echo "file or a flaky disk would try: FIFOs, devices and 3 GB sparse files where a file is"
    echo "expected (every input is opened non-blocking and must be a regular file; only"
    echo "\`--config -\` or \`--config /dev/stdin\` may be a pipe, read by rank 0 up to 1 MiB and"
    echo "broadcast), outputs that would replace a device or overwrite an input or another"
    echo "output (all checked before any work), sizes that cannot fit, loose numbers, and runs"
    echo "that would do nothing. Besides the exit code and the one line, every case must end"
    echo "within ${CASE_SECONDS} s and leave every file it found (the scratch files, and the"
    echo "case's own directory with a canary, the inputs it must not overwrite and a user's"
    echo "\`PATH.tmp\`) byte for byte unchanged. A resumed run already at \`--train-iters\`"
    echo "exits 0 and says \`nothing to train\` (it still writes the requested outputs, so"
    echo "a checkpoint can be exported); one beyond it is refused."
    last=""
    for row in "${rows[@]}"; do
      IFS=$'\t' read -r sect n cmd line nl rc <<< "$row"
      if [ "$sect" != "$last" ]; then
        echo; echo "## $sect"; echo
        echo "| case | input | what the user sees (stderr) | exit code |"
        echo "|---|---|---|---|"
        last=$sect
      fi
      extra=""
      [ "$nl" != 1 ] && extra=" **(+ $((nl - 1)) more lines: breaks the one-line rule)**"
      echo "| $n | \`$(shorten "$cmd" cut)\` | \`$(shorten "$line")\`$extra | $rc |"
    done
    if [ -n "$kept" ]; then echo; printf '%s\n' "$kept"; fi
  } > "$doc"
  echo "# wrote $doc (${#rows[@]} cases)"
fi
