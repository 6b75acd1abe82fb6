#!/usr/bin/env bash
# suite_backend.sh: the backend boundary (include/backend.h) and the CUDA build.
#  1. The fp32 CPU backend's op table against the CPU fp64 oracle
#     (tests/backend_ops.c, NMSE <= 1e-9 per output), and a corrupted oracle
#     that the check must reject: the harness the CUDA backend is held to,
#     proven without a GPU.
#  2. `make CUDA=1` builds ./pretrain_gpt_cuda and the CUDA op test (nvcc and
#     cuBLAS are enough; no GPU needed).
#  3. No GPU: ./pretrain_gpt_cuda says so in one line and exits 2, on one
#     rank and on two.
#  4. A GPU (nvidia-smi lists one): the CUDA op table against the oracle; 10
#     iterations of the tiny model (dropout on) against the CPU fp32 run at
#     docs/design.md §1's fp32 tolerances; TP / SP / PP / DP layouts with several
#     ranks sharing the GPU against one GPU rank; the blocked attention
#     (--use-flash-attn) against the plain one; CP 2 (ring and all-to-all)
#     against one GPU rank; Llama-style blocks against the CPU; --bf16
#     against the CPU's bf16 in suite_bf16's band.
#  5. No GPU: the checks of 4 on tests/cudaemu (CUDA kernels run on the CPU;
#     tests/cudaemu/README.md), plus the emulator's own tests.
#   MT_CUDA_BUILD=0 skips 2-3 (a machine without nvcc).
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
B=${BUILD:-build}
ORACLE=$T/oracle.bin

# check_ops NAME BINARY ORACLE [DUMP]: the binary's own ok / not ok lines,
# prefixed (DUMP: its outputs, for a bitwise comparison of two runs).
check_ops() {
  local name=$1 bin=$2 oracle=$3
  "$bin" check "$oracle" ${4:+"$4"} > "$T/$name.log" 2>&1
  local rc=$?
  sed -n "s/^ok /ok ${name}_/p; s/^not ok /not ok ${name}_/p" "$T/$name.log"
  # A run that stops part way (an abort after some outputs) fails too: its
  # last line must be the summary with no failure.
  [ $rc = 0 ] && tail -n 1 "$T/$name.log" | grep -q '^[0-9]* passed, 0 failed' ||
    grep -q '^not ok ' "$T/$name.log" || not_ok "$name" "exit $rc: $(tail -n 1 "$T/$name.log")"
  return $rc
}

if "$B"/fp64/tests/backend_ops write "$ORACLE" > "$T/oracle.log" 2>&1; then ok oracle_fp64_written
else not_ok oracle_fp64_written "$(tail -n 1 "$T/oracle.log")"; fi
check_ops cpu_fp32 "$B"/fp32/tests/backend_ops "$ORACLE"

# Negative control: one value of the first output (matmul_forward, element
# 10) replaced by 1e30 must fail that output and only that one.
cp "$ORACLE" "$T/bad.bin"
printf '\x00\x00\x00\x00\x00\x00\x49\x46' | dd of="$T/bad.bin" bs=1 seek=$((64 + 8 + 8 * 10)) conv=notrunc status=none
"$B"/fp32/tests/backend_ops check "$T/bad.bin" > "$T/bad.log" 2>&1
rc=$?
nbad=$(grep -c '^not ok' "$T/bad.log")
if [ $rc != 0 ] && [ "$nbad" = 1 ] && grep -q '^not ok matmul_forward:' "$T/bad.log"; then ok corrupted_oracle_rejected
else not_ok corrupted_oracle_rejected "exit $rc, $nbad failing outputs: $(grep -m1 '^not ok' "$T/bad.log")"; fi

# The GPU build's MPI staging (src/comm.c: host copies around every
# collective and pipeline message), run on the CPU with MT_COMM_STAGED=1: the
# copies must not change one bit of the result. TP 2 + SP x PP 2 exercises
# all-gather, reduce-scatter, all-reduce and the pipeline sends; DP 2 with
# the distributed optimizer the gradient reduce-scatter and parameter gather;
# CP 2 the ring's sends and receives.
# same_bits NAME NP BIN VAR BANNER "FLAGS": BIN with VAR=1 takes the path
# whose banner line starts with BANNER (without VAR it does not) and trains
# bit for bit as without it: every loss and the final parameters.
same_bits() {
  local name=$1 np=$2 bin=$3 var=$4 banner=$5 flags=$6 a=$T/${1}_without b=$T/${1}_with why
  # shellcheck disable=SC2086
  mt_run "$a" "$np" $bin $(tiny_model) $flags || { not_ok "$name" "run without $var failed: $(tail -n 1 "$a.log")"; return; }
  # shellcheck disable=SC2086
  (export "$var=1"; mt_run "$b" "$np" $bin $(tiny_model) $flags) || { not_ok "$name" "run with $var=1 failed: $(tail -n 1 "$b.log")"; return; }
  if ! grep -q "^$banner" "$b.log" || grep -q "^$banner" "$a.log"; then
    not_ok "$name" "$var=1 did not switch to '$banner': $(grep -h 'comm: MPI' "$a.log" "$b.log" | tr '\n' ' ')"
  elif why=$(compare_losses "$a.json" "$b.json" 0) && cmp -s "$a.st" "$b.st"; then ok "$name ($why)"
  else not_ok "$name" "losses or parameters differ: $why"; fi
}
staged_same() { same_bits "$1" "$2" ./pretrain_gpt MT_COMM_STAGED "comm: MPI on host-staged copies" "$3"; }
staged_same comm_staged_tp2_sp_pp2_bitwise 4 "--tensor-model-parallel-size 2 --sequence-parallel --pipeline-model-parallel-size 2"
staged_same comm_staged_dp2_distopt_bitwise 2 "--use-distributed-optimizer"
# CP's ring: in the backward two rings are in flight at once (K | V and
# their gradients), each landing from its own staging buffer.
staged_same comm_staged_cp2_bitwise 2 "--context-parallel-size 2"
# CP's all-gather: gathered in place from a staged copy while the own block
# is attended, its gradients reduce-scattered.
staged_same comm_staged_cp2_allgather_bitwise 2 "--context-parallel-size 2 --cp-comm-type allgather"
staged_same comm_staged_cp4_a2a_p2p_bitwise 4 "--context-parallel-size 4 --cp-comm-type a2a+p2p --hierarchical-context-parallel-sizes 2 2"
# All-forward-all-backward with 80 micro-batches keeps 80 sends in flight a
# rank: the staging pool grows past its first 16 (it stopped at 64 before).
staged_same comm_staged_pp2_afab_m80_bitwise 2 "--pipeline-model-parallel-size 2 --pipeline-schedule afab --micro-batch-size 1 --global-batch-size 80 --train-iters 2"

# 2-3: the real CUDA build (nvcc) and, without a GPU, its one-line refusal.
if [ "${MT_CUDA_BUILD:-1}" = 0 ]; then echo "# CUDA build checks skipped (MT_CUDA_BUILD=0)"
elif [ "${MT_CUDA_PREBUILT:-0}" = 1 ]; then
  echo "# using the prebuilt ./pretrain_gpt_cuda (MT_CUDA_PREBUILT=1)"
elif ! command -v "${NVCC:-nvcc}" > /dev/null && [ ! -x /usr/local/cuda/bin/nvcc ]; then
  not_ok cuda_build "nvcc not found (install the CUDA toolkit, or MT_CUDA_BUILD=0 to skip)"
elif make CUDA=1 cuda -j"$(nproc --all)" > "$T/cuda_build.log" 2>&1; then ok cuda_build
else not_ok cuda_build "$(grep -m1 -E 'error|Error' "$T/cuda_build.log")"; fi

# one_line_exit2 NAME CMD...: exit 2 and one line naming the missing GPU.
one_line_exit2() {
  local name=$1; shift
  timeout --kill-after=5 120 "$@" > "$T/$name.out" 2> "$T/$name.err"
  local rc=$? n
  n=$(grep -cv '^[[:space:]]*$' "$T/$name.err")
  if [ $rc = 2 ] && [ "$n" = 1 ] && grep -q 'no usable CUDA GPU' "$T/$name.err" && [ ! -s "$T/$name.out" ]; then ok "$name"
  else not_ok "$name" "exit $rc, $n stderr lines: $(head -n 2 "$T/$name.err" | tr '\n' ' ')"; fi
}

# 4-5: the GPU checks, on the GPU when there is one, else on tests/cudaemu
# (the same CUDA sources through g++, kernels run on the CPU: their indexing,
# barriers, shuffles, launch sizes and the host code around them, at the same
# bounds; not the GPU's timing or its summation orders).
if nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  echo "# GPU: $(nvidia-smi -L | head -n 1)"
  P=cuda GPU_BIN=./pretrain_gpt_cuda OPS_BIN=build/cuda/tests/backend_ops
else
  if [ -x ./pretrain_gpt_cuda ]; then
    echo "# no GPU here: the no-GPU contract"
    one_line_exit2 cuda_no_gpu_np1 ./pretrain_gpt_cuda $(tiny_model)
    one_line_exit2 cuda_no_gpu_np2 $MPIRUN 2 ./pretrain_gpt_cuda $(tiny_model) --tensor-model-parallel-size 2
  fi
  echo "# no GPU here: the GPU checks on tests/cudaemu (CUDA kernels run on the CPU)"
  if make cudaemu -j"$(nproc --all)" > "$T/cudaemu_build.log" 2>&1; then ok cudaemu_build
  else not_ok cudaemu_build "$(grep -m1 -E 'error|Error' "$T/cudaemu_build.log")"; exit 0; fi
  # The emulator itself against CUDA's documented semantics.
  build/cudaemu/tests/test_cudaemu > "$T/test_cudaemu.log" 2>&1
  rc=$?
  sed -n "s/^ok /ok cudaemu_/p; s/^not ok /not ok cudaemu_/p" "$T/test_cudaemu.log"
  [ $rc = 0 ] || grep -q '^not ok' "$T/test_cudaemu.log" || not_ok cudaemu_selftest "exit $rc: $(tail -n 1 "$T/test_cudaemu.log")"
  CUDAEMU_NO_DEVICE=1 one_line_exit2 cudaemu_no_device_np1 build/cudaemu/pretrain_gpt_cuda $(tiny_model)
  P=cudaemu GPU_BIN=build/cudaemu/pretrain_gpt_cuda OPS_BIN=build/cudaemu/tests/backend_ops
fi

check_ops $P "$OPS_BIN" "$ORACLE" "$T/ops_1.bin"
# Every kernel's result is independent of the order its blocks and threads
# run in: no race between blocks (two writing one element, one reading what
# another writes) and no float atomics. The emulator runs every launch of the
# second run in the opposite block and thread order (CUDAEMU_ORDER_FLIP); on
# a GPU the scheduler picks, and the same bits twice show determinism.
CUDAEMU_ORDER_FLIP=1 check_ops ${P}_again "$OPS_BIN" "$ORACLE" "$T/ops_2.bin" > /dev/null
if [ -s "$T/ops_1.bin" ] && cmp -s "$T/ops_1.bin" "$T/ops_2.bin"; then
  ok "${P}_ops_same_bits_in_another_block_and_thread_order ($(stat -c %s "$T/ops_1.bin") bytes)"
else not_ok "${P}_ops_same_bits_in_another_block_and_thread_order" "$(cmp "$T/ops_1.bin" "$T/ops_2.bin" 2>&1 | head -n 1)"; fi
# The blocked attention's one-warp-per-row kernels, which the shared-memory
# tiles replaced (still there for head dims past 64, and for timing).
MT_CUDA_FLASH_KERNEL=rows check_ops ${P}_flash_rows "$OPS_BIN" "$ORACLE"

BASE=$(tiny_model)
# gpu_vs NAME NP "FLAGS" REF [LOSS_TOL RMS_TOL]: a GPU run against a
# reference run, at fp32 tolerances unless given.
gpu_vs() {
  local name=${P}_$1 np=$2 flags=$3 ref=$4 lt=${5:-1e-5} rt=${6:-1e-4} out=$T/${P}_$1 why
  if ! mt_run "$out" "$np" $GPU_BIN $BASE $flags; then
    not_ok "$name" "run failed: $(grep -m1 error "$out.log" || tail -n 1 "$out.log")"; return
  fi
  why=$(compare_losses "$ref.json" "$out.json" "$lt") && tools/compare "$ref.st" "$out.st" --max-rel-rms "$rt" > /dev/null 2>&1
  if [ $? = 0 ]; then ok "$name ($why)"; else
    not_ok "$name" "$why $(tools/compare "$ref.st" "$out.st" --top 2 2>&1 | tail -n 2 | tr '\n' ' ')"; fi
}
mt_run "$T/cpu" 1 ./pretrain_gpt $BASE || not_ok cpu_reference "$(tail -n 1 "$T/cpu.log")"
gpu_vs tiny_vs_cpu_fp32 1 "" "$T/cpu"
mt_run "$T/gpu1" 1 $GPU_BIN $BASE || not_ok gpu_reference "$(tail -n 1 "$T/gpu1.log")"
gpu_vs tp2 2 "--tensor-model-parallel-size 2" "$T/gpu1"
gpu_vs tp2_sp 2 "--tensor-model-parallel-size 2 --sequence-parallel" "$T/gpu1"
gpu_vs tp4_sp 4 "--tensor-model-parallel-size 4 --sequence-parallel" "$T/gpu1"
gpu_vs tp2_sp_pp2 4 "--tensor-model-parallel-size 2 --sequence-parallel --pipeline-model-parallel-size 2" "$T/gpu1"
gpu_vs dp2_distopt 2 "--use-distributed-optimizer" "$T/gpu1"
# The blocked attention trains like the plain one (dropout on), also under TP 2 + SP.
gpu_vs flash 1 "--use-flash-attn" "$T/gpu1"
gpu_vs flash_tp2_sp 2 "--use-flash-attn --tensor-model-parallel-size 2 --sequence-parallel" "$T/gpu1"
# Tiles and rows sum in the same order: the same bits on tests/cudaemu, fp32
# round-off on a GPU (where nvcc may fuse other multiply-adds in each).
# Sequences of 80 cross the tiles' 64 queries; head dim 64 gives each lane two.
FL="--num-layers 2 --hidden-size 128 --num-attention-heads 2 --seq-length 80 --vocab-size 256 --make-vocab-size-divisible-by 96 --train-data-path $(test_corpus)_train.bin --data-order sequential --train-iters 4 --lr 1e-3 --micro-batch-size 2 --global-batch-size 4 --use-flash-attn"
if mt_run "$T/tiles" 1 $GPU_BIN $FL && MT_CUDA_FLASH_KERNEL=rows mt_run "$T/rows" 1 $GPU_BIN $FL &&
   grep -q 'blocked attention by rows' "$T/rows.log" && ! grep -q 'blocked attention by rows' "$T/tiles.log"; then
  if [ $P = cudaemu ]; then why=$(compare_losses "$T/rows.json" "$T/tiles.json" 0) && cmp -s "$T/rows.st" "$T/tiles.st"
  else why=$(compare_losses "$T/rows.json" "$T/tiles.json" 1e-5) && tools/compare "$T/rows.st" "$T/tiles.st" --max-rel-rms 1e-4 > /dev/null 2>&1; fi
  if [ $? = 0 ]; then ok "${P}_flash_tiles_equal_rows ($why)"; else not_ok "${P}_flash_tiles_equal_rows" "$why; parameters differ"; fi
else not_ok "${P}_flash_tiles_equal_rows" "a run failed: $(tail -n 1 "$T/tiles.log") / $(tail -n 1 "$T/rows.log")"; fi
# Interleaved 1F1B, DP 2 with every overlap flag, and TP 2 + SP with its
# backward collectives behind the GEMMs, against one GPU rank.
gpu_vs pp2_interleaved 2 "--pipeline-model-parallel-size 2 --num-layers-per-virtual-pipeline-stage 1" "$T/gpu1"
gpu_vs dp2_overlap 2 "--use-distributed-optimizer --overlap-grad-reduce --overlap-param-gather --ddp-bucket-size 2000" "$T/gpu1"
gpu_vs tp2_sp_pp2_overlap_p2p 4 "--tensor-model-parallel-size 2 --sequence-parallel --pipeline-model-parallel-size 2 --overlap-p2p-communication" "$T/gpu1"
# Recomputation and the unfused paths change no number on the CPU; on the
# GPU they stay within fp32 round-off of the default run.
gpu_vs recompute_full 1 "--recompute-granularity full --recompute-method block --recompute-num-layers 1" "$T/gpu1"
gpu_vs recompute_selective 1 "--recompute-granularity selective" "$T/gpu1"
gpu_vs unfused 1 "--no-bias-gelu-fusion --no-bias-dropout-fusion --no-masked-softmax-fusion --no-persist-layer-norm --no-grad-norm-fusion" "$T/gpu1"
# Context parallelism's ring (cp_attention.cu), all-to-all, all-gather and a2a+p2p against one GPU rank.
gpu_vs cp2 2 "--context-parallel-size 2" "$T/gpu1"
gpu_vs cp2_a2a 2 "--context-parallel-size 2 --cp-comm-type a2a" "$T/gpu1"
gpu_vs cp2_allgather 2 "--context-parallel-size 2 --cp-comm-type allgather" "$T/gpu1"
gpu_vs cp4_a2a_p2p 4 "--context-parallel-size 4 --cp-comm-type a2a+p2p --hierarchical-context-parallel-sizes 2 2" "$T/gpu1"
# Llama-style blocks (llama.cu: SwiGLU, RoPE; RMSNorm; grouped-query
# attention) against the CPU at fp32 tolerances.
LLAMA="--normalization RMSNorm --swiglu --position-embedding-type rope --disable-bias-linear --group-query-attention --num-query-groups 2"
mt_run "$T/cpu_llama" 1 ./pretrain_gpt $BASE $LLAMA || not_ok cpu_llama_reference "$(tail -n 1 "$T/cpu_llama.log")"
gpu_vs llama_vs_cpu 1 "$LLAMA" "$T/cpu_llama"
# On the emulator only: no host code touches device memory while GPU work
# is queued (CUDAEMU_STRICT=1 closes it meanwhile), as a GPU without
# concurrent managed access requires, on the layouts whose host code
# indexes or sums device data (the TP loss, CP's all-to-all placement).
if [ $P = cudaemu ]; then
  why=""
  for l in "2|--tensor-model-parallel-size 2" "4|--tensor-model-parallel-size 2 --sequence-parallel --pipeline-model-parallel-size 2" \
           "2|--context-parallel-size 2 --cp-comm-type a2a" "2|--context-parallel-size 2" "2|--context-parallel-size 2 --cp-comm-type allgather" \
           "4|--context-parallel-size 4 --cp-comm-type a2a+p2p --hierarchical-context-parallel-sizes 2 2" \
           "2|--use-distributed-optimizer --overlap-grad-reduce --overlap-param-gather"; do
    IFS='|' read -r np flags <<< "$l"
    # shellcheck disable=SC2086
    CUDAEMU_STRICT=1 mt_run "$T/strict" "$np" $GPU_BIN $BASE --train-iters 2 $flags && grep -q '^cudaemu: strict:' "$T/strict.log" ||
      why="$why; $flags: $(grep -m1 -E 'cudaemu: the|error' "$T/strict.log" || echo 'strict mode not on')"
  done
  [ -z "$why" ] && ok cudaemu_strict_no_host_access_while_queued || not_ok cudaemu_strict_no_host_access_while_queued "${why#; }"
  # The CUDA-aware MPI path (device buffers straight to MPI; src/comm.c
  # `direct`), which Debian's Open MPI cannot take on a GPU: the emulator's
  # device memory is host memory, so MT_COMM_DIRECT=1 takes it. Queued
  # kernels run only at a wait here, so a buffer handed to MPI before its
  # kernels finished, or a result landed without its copy, changes the
  # bits: each layout must equal the staged path bit for bit. A mutant
  # without direct()'s sync differed in every layout below.
  direct_same() { same_bits "cudaemu_comm_direct_$1" "$2" "$GPU_BIN" MT_COMM_DIRECT "comm: MPI on device buffers" "$3"; }
  direct_same tp2_sp_pp2_overlap_p2p_bitwise 4 "--tensor-model-parallel-size 2 --sequence-parallel --pipeline-model-parallel-size 2 --overlap-p2p-communication"
  direct_same dp2_distopt_overlap_bitwise 2 "--use-distributed-optimizer --overlap-grad-reduce --overlap-param-gather"
  direct_same cp2_bitwise 2 "--context-parallel-size 2"
  direct_same cp2_a2a_bitwise 2 "--context-parallel-size 2 --cp-comm-type a2a"
  direct_same cp2_allgather_bitwise 2 "--context-parallel-size 2 --cp-comm-type allgather"
  direct_same cp4_a2a_p2p_bitwise 4 "--context-parallel-size 4 --cp-comm-type a2a+p2p --hierarchical-context-parallel-sizes 2 2"
fi
# bf16 against the CPU's bf16 emulation, in suite_bf16's band for two
# correct bf16 runs that differ only in summation order (loss 1e-4, tensors
# 5e-2 relative RMS).
mt_run "$T/cpu_bf16" 1 ./pretrain_gpt $BASE --bf16 || not_ok cpu_bf16_reference "$(tail -n 1 "$T/cpu_bf16.log")"
gpu_vs bf16_vs_cpu_bf16 1 "--bf16" "$T/cpu_bf16" 1e-4 5e-2
