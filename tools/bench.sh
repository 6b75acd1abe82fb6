#!/usr/bin/env bash
# tools/bench.sh: what `make bench` runs. A speed report, side by side in one
# run, printed as Markdown and written to out/bench.md:
#   1. the practical ceiling: cblas_sgemm on the model's GEMM shapes
#      (tools/sgemm_bench, best of several repetitions);
#   2. ./pretrain_gpt on the small shape (configs/small.conf: 4 layers,
#      hidden 256, 4 heads, vocab 256, B=4, T=128), single process, with
#      the trainer's default (it waits passively, OMP_WAIT_POLICY=PASSIVE,
#      unless told otherwise: spinning OpenMP threads lose badly on a loaded
#      machine; PyTorch runs PASSIVE here too) and again with
#      OMP_WAIT_POLICY=ACTIVE (spinning: what a quiet machine allows);
#   3. the same model in PyTorch (tools/torch_reference.py), started from the
#      SAME llm.c model file (--init-from), so both train identical weights on
#      identical batches (the step-1 losses are printed as the proof);
#   4. GPT-2 124M's shape (12 layers, 768, 12 heads, vocab 50257 padded to
#      50304, B=4, T=64), both implementations, a few steps;
#   5. model FLOPs per token = 6N + 12*L*T*h (N = all parameters, embeddings
#      included), GFLOP/s = FLOPs/token * tokens/s, as a share of the ceiling.
#   6. the small shape's layouts on the same cores: TP 2, TP 2 + SP, PP 2 and
#      DP 2 as 2 ranks x 1 thread against 1 rank x 2 threads (same batches).
# Plus peak RSS of every run next to the trainer's own --log-memory accounting
# (the trainer prints rank 0's VmHWM and, separately, what was resident
# before it allocated the model: libraries, Open MPI, OpenBLAS, the data).
#
#   tools/bench.sh            everything (~3-6 minutes on 2 cores, twice that with two kernels)
#   tools/bench.sh --quick    sgemm + the small shape only, fewer iterations
#   tools/bench.sh --smoke    the machinery only (tests/suite_tools.sh): tiny
#                             sgemm, 3 steps of the small shape from a random
#                             init, DP 2; no PyTorch, no 124M; numbers meaningless
#
# Kernels: the report prints the CPU's vector features and the OpenBLAS core
# (openblas_get_corename). When the environment pins OPENBLAS_CORETYPE to a
# core that is not the one OpenBLAS picks by itself (this project's machines
# pin Haswell on AVX-512 CPUs), every C row and the ceiling run twice: with
# the environment as it is (pinned) and with OPENBLAS_CORETYPE and
# OPENBLAS_L2_SIZE unset in that command alone (native: what a user's
# OpenBLAS runs). The native row is the headline. The ceiling is the best
# cblas_sgemm over the model's own GEMMs (forward nt, backward nn and tn, the
# LM head included), measured in the same run with the same kernel.
# Environment: BENCH_THREADS (default 2) threads for every run; BENCH_ROUNDS
# (default 2, --quick and --smoke 1) rounds of the small shape and the
# layouts (every other round in reverse); BENCH_BIG_ROUNDS (default
# 1) rounds of the 124M shape (each round costs about a minute or more).
#
# Timing: every run uses THREADS threads (OMP_NUM_THREADS and
# OPENBLAS_NUM_THREADS). ms/iter is the median of the per-step times after
# WARMUP=2 warm-up steps: the trainer's own per-iteration times from
# --metrics-file; for PyTorch, the gaps between its per-step JSON lines (it
# flushes each one), stamped on arrival, so both are measured the same way.
# Each shape runs in rounds, C and PyTorch back to back (the order alternates
# per round), and each implementation's best round is reported: the machine
# may be shared, so the least disturbed round is the better estimate.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C   # '.' as the decimal point in $EPOCHREALTIME and awk

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
QUICK=0 SMOKE=0
while [ $# -gt 0 ]; do
    case $1 in
        --quick) QUICK=1 ;;
        --smoke) QUICK=1; SMOKE=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done

THREADS=${BENCH_THREADS:-2}
WARMUP=2
if [ $SMOKE = 1 ]; then
    SMALL_ITERS=3; ROUNDS=${BENCH_ROUNDS:-1}; SG_REPS=2   # two: the median (the upper one) differs from the best
elif [ $QUICK = 1 ]; then
    SMALL_ITERS=10; ROUNDS=${BENCH_ROUNDS:-1}; SG_REPS=3
else
    SMALL_ITERS=20; ROUNDS=${BENCH_ROUNDS:-2}; SG_REPS=5
fi
BIG_ITERS=5   # 2 warm-up + 3 timed, both implementations
BIG_ROUNDS=${BENCH_BIG_ROUNDS:-1}
PY=/usr/bin/python3
W=${BENCH_OUT:-out/bench}         # logs and per-run files (--smoke: give a temporary directory)
SMALL_MODEL=out/bench_small.bin   # llm.c model files, cached
BIG_MODEL=out/bench_gpt2_124m.bin
BIG_DATA=out/bench_gpt2_tokens.bin
mkdir -p "$W"
rm -f "$W"/small_* "$W"/big_* "$W"/par_* "$W"/sgemm*.txt "$W"/report.md   # no stale results from an earlier run

say() { echo "bench: $*" >&2; }
die() { echo "bench.sh: error: $*" >&2; exit 1; }

# ---------------------------------------------------------- prerequisites --
[ -x ./pretrain_gpt ] || make -s pretrain_gpt >&2
if [ ! -x tools/sgemm_bench ] || [ tools/sgemm_bench.c -nt tools/sgemm_bench ]; then
    make -s tools/sgemm_bench >&2
fi
if [ ! -f tools/gemm_profile.so ] || [ tools/gemm_profile.c -nt tools/gemm_profile.so ]; then
    make -s tools/gemm_profile.so >&2
fi
SMALL_DATA=${BENCH_DATA:-data/fortunes_train.bin}
[ -f "$SMALL_DATA" ] || tools/get-data.sh >&2
TORCH_VERSION="not run (--smoke)"
if [ $SMOKE = 0 ]; then
    [ -x "$PY" ] && "$PY" -c 'import torch, numpy' 2>/dev/null || die "$PY cannot import torch and numpy (tools/install-deps.sh)"
    TORCH_VERSION=$("$PY" -c 'import torch; print(torch.__version__)')
fi
# Every C run uses one snapshot of ./pretrain_gpt: a concurrent `make` (other
# people's work on a shared checkout) cannot swap the binary mid-report.
PG=$W/pretrain_gpt
cp ./pretrain_gpt "$PG.tmp" && mv "$PG.tmp" "$PG"
PG_WHEN=$(date -u -r ./pretrain_gpt '+%Y-%m-%d %H:%M:%S UTC')

CMDS=()   # every distinct command, in the order first run
record() {
    local s
    s=$(printf '%q ' "$@")
    s=${s% }
    local c
    for c in "${CMDS[@]+"${CMDS[@]}"}"; do [ "$c" = "$s" ] && return; done
    CMDS+=("$s")
}

# peak_rss FILE CMD...: runs CMD (stdout/stderr untouched), writes its peak
# resident set size in KiB to FILE, returns CMD's status. GNU time when it is
# there; else polls VmHWM (the kernel's high-water mark) in /proc.
if [ -x /usr/bin/time ] && /usr/bin/time -f %M -o /dev/null true 2>/dev/null; then
    RSS_HOW="GNU time (%M, max resident set)"
    peak_rss() { local f=$1; shift; /usr/bin/time -f %M -o "$f" "$@"; }
else
    RSS_HOW="VmHWM from /proc/PID/status, polled every 50 ms"
    peak_rss() {
        local f=$1; shift
        "$@" &
        local pid=$! hwm=0 k v rest rc=0
        while kill -0 "$pid" 2>/dev/null; do
            while read -r k v rest; do [ "$k" = VmHWM: ] && hwm=$v; done < "/proc/$pid/status" 2>/dev/null || true
            sleep 0.05
        done
        wait "$pid" || rc=$?
        echo "$hwm" > "$f"
        return $rc
    }
fi
rss_mib() { awk 'END { printf "%.0f", $1 / 1024 }' "$1"; }   # last line: the KiB

stamp() { local l; while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# A JSON number field of a line: jnum KEY < lines
jnum() { sed -n "s/.*\"$1\": *\\([-0-9.eE+]*\\).*/\\1/p"; }

# ------------------------------------------------------------------ model files --
# header: magic version maxT V L NH C Vp (int32, llm.c)
header() { od -An -t d4 -N 32 "$1" | tr -s ' \n' ' '; }
model_bytes() { # L C V Vp maxT -> expected llm.c file size
    awk -v L="$1" -v C="$2" -v Vp="$4" -v T="$5" 'BEGIN { printf "%.0f", 1024 + 4 * (Vp*C + T*C + L*(12*C*C + 13*C) + 2*C) }'
}
ensure_model() { # FILE L NH C V Vp maxT
    local f=$1 L=$2 NH=$3 C=$4 V=$5 Vp=$6 T=$7
    if [ -f "$f" ] && [ "$(stat -c %s "$f")" = "$(model_bytes "$L" "$C" "$V" "$Vp" "$T")" ] &&
       [ "$(header "$f")" = " 20240326 3 $T $V $L $NH $C $Vp " ]; then return; fi
    say "creating $f (L=$L h=$C heads=$NH V=$V/$Vp maxT=$T; cached for later runs)"
    local cmd=("$PY" tools/torch_reference.py --write-init "$f.tmp" --layers "$L" --heads "$NH" --channels "$C" --vocab "$V" --max-seq "$T" --padded-vocab "$Vp")
    "${cmd[@]}" >&2
    mv "$f.tmp" "$f"
}
ensure_data() { # FILE TOKENS V
    local f=$1 n=$2 V=$3
    if [ -f "$f" ] && [ "$(stat -c %s "$f")" = $((1024 + 2 * n)) ]; then return; fi
    say "creating $f ($n random tokens, vocab $V)"
    "$PY" tools/torch_reference.py --write-data "$f.tmp" --tokens "$n" --vocab "$V" >&2
    mv "$f.tmp" "$f"
}
flops_per_token() { # MODEL T -> 6N + 12*L*T*h
    header "$1" | awk -v T="$2" '{ maxT = $3; L = $5; C = $7; Vp = $8
        N = Vp*C + maxT*C + L*(12*C*C + 13*C) + 2*C
        printf "%.0f %.0f\n", 6*N + 12*L*T*C, N }'
}

# ------------------------------------------------------------------ runners --
# run_c TAG ARGS...: ./pretrain_gpt, per-step ms after warm-up into TAG.ms
# (C_ENV: extra VAR=VALUE words for env, e.g. OMP_WAIT_POLICY=PASSIVE)
C_ENV=()
run_c() {
    local tag=$1; shift
    rm -f "$W/$tag.jsonl"
    local cmd=(${K_PRE[@]+"${K_PRE[@]}"} env ${C_ENV[@]+"${C_ENV[@]}"} OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" "$PG" "$@" --metrics-file "$W/$tag.jsonl" --log-memory)
    record "${cmd[@]}"
    say "$tag: ${cmd[*]}"
    peak_rss "$W/$tag.rss" "${cmd[@]}" > "$W/$tag.log" 2>&1 || { tail -n 5 "$W/$tag.log" >&2; die "$tag failed (log: $W/$tag.log)"; }
    awk -v w=$WARMUP -F'"ms_per_iter": ' '{ split($0, a, "\"iteration\": "); split(a[2], b, ","); sub(/}.*/, "", $2)
        if (b[1] + 0 > w) print $2 }' "$W/$tag.jsonl" > "$W/$tag.ms"
    grep -m1 '"iteration": 1,' "$W/$tag.jsonl" | jnum lm_loss > "$W/$tag.loss1"
    awk -F'"ms_per_iter": ' '{ sub(/}.*/, "", $2); if (NR <= 2) printf "%s%.0f", (NR > 1 ? ", " : ""), $2 }' "$W/$tag.jsonl" > "$W/$tag.warm"
    [ -s "$W/$tag.ms" ] || die "$tag: no timed iterations in $W/$tag.jsonl"
}
# run_torch TAG ARGS...: torch_reference.py; step k takes stamp(k) - stamp(k-1)
run_torch() {
    local tag=$1; shift
    local cmd=(env OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS"
               "$PY" tools/torch_reference.py "$@" --dtype float32 --threads "$THREADS" --bench)
    record "${cmd[@]}"
    say "$tag: ${cmd[*]}"
    peak_rss "$W/$tag.rss" "${cmd[@]}" 2> "$W/$tag.err" | stamp > "$W/$tag.log" ||
        { tail -n 5 "$W/$tag.err" >&2; die "$tag failed (log: $W/$tag.log, $W/$tag.err)"; }
    awk -v w=$WARMUP '/"iteration": / { split($0, a, "\"iteration\": "); split(a[2], b, ","); k = b[1] + 0
        if (k > w && prev != "") printf "%.3f\n", 1000 * ($1 - prev); prev = $1 }' "$W/$tag.log" > "$W/$tag.ms"
    grep -m1 '"iteration": 1,' "$W/$tag.log" | jnum lm_loss > "$W/$tag.loss1"
    grep '"bench": true' "$W/$tag.log" | jnum ms_per_iter > "$W/$tag.own"
    [ -s "$W/$tag.ms" ] || die "$tag: no timed steps in $W/$tag.log"
}
med() { median < "$W/$1.ms"; }

# ------------------------------------------------------------------ machine --
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
NCPU=$(grep -c '^processor' /proc/cpuinfo)
MEM_GIB=$(awk '/^MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
if REV=$(git rev-parse --short HEAD 2>/dev/null); then
    git diff --quiet HEAD -- src include 2>/dev/null || REV="$REV + uncommitted changes in src/include"
else
    REV="(not a git checkout)"
fi
T_START=$SECONDS

# ------------------------------------------------------------------ kernels --
FEATURES=$(grep -m1 '^flags' /proc/cpuinfo | grep -oE '\b(avx2|fma|avx512[a-z_0-9]*|amx[a-z_0-9]*)\b' | sort -u | tr '\n' ' ')
PIN_CORE=$(tools/sgemm_bench --core | awk '{ print $2 }')
NATIVE_CORE=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE tools/sgemm_bench --core | awk '{ print $2 }')
BLAS_CORE=$(OPENBLAS_NUM_THREADS=1 tools/sgemm_bench --reps 1 8x8x8:nt | sed -n 's/^# OpenBLAS: //p')
# Kernel tags, the headline first; K_PRE is the command prefix of each.
if [ -n "${OPENBLAS_CORETYPE:-}" ] && [ "$PIN_CORE" != "$NATIVE_CORE" ]; then
    KERNELS=(native pinned)
else
    KERNELS=(default)
fi
kpre() { case $1 in native) K_PRE=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE) ;; *) K_PRE=() ;; esac; }
klabel() { case $1 in native) echo "native $NATIVE_CORE (headline)" ;; pinned) echo "pinned $PIN_CORE (OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE)" ;; *) echo "$PIN_CORE" ;; esac; }

# The model's own GEMMs: for each linear layer (oc outputs, c inputs) on n
# tokens, forward n x oc x c (nt), input gradient n x c x oc (nn), weight
# gradient oc x c x n (tn); QKV, projection, the MLP's two and the LM head.
model_gemms() { # n h ff Vp
    local n=$1 h=$2 ff=$3 vp=$4 oc c
    for pair in "$((3 * h)) $h" "$h $h" "$ff $h" "$h $ff" "$vp $h"; do
        read -r oc c <<< "$pair"
        echo "${n}x${oc}x${c}:nt ${n}x${c}x${oc}:nn ${oc}x${c}x${n}:tn"
    done | tr '\n' ' '
}
declare -A CEIL_OF CEIL_AT_OF BETA1_OF BOUND_MS_OF BOUND_MED_MS_OF
declare -A LAYERS_OF=([small]=4 [big]=12)
# cblas calls a step: 12 a layer (QKV, projection, fc1, fc2; forward, input
# and weight gradients), 3 for the LM head.
declare -A GEMMS_OF=([small]=$((12 * LAYERS_OF[small] + 3)) [big]=$((12 * LAYERS_OF[big] + 3)))
# sgemm_run FILE ARGS...: one tools/sgemm_bench run with this kernel's
# environment, recorded, its report in $W/FILE.
sgemm_run() {
    local out=$1; shift
    local cmd=(${K_PRE[@]+"${K_PRE[@]}"} env OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" tools/sgemm_bench --reps "$SG_REPS" "$@")
    record "${cmd[@]}"
    say "$out: ${cmd[*]}"
    "${cmd[@]}" > "$W/$out"
}
# gemm_bound L COL STEM: the GEMM-only bound in ms, the step time if the
# model ran nothing but its GEMMs at the times in column COL of $W/STEM.txt
# (the weight gradients, every third line, from $W/STEM_beta1.txt, as the
# model runs them: accumulating). The shapes are 4 per-layer pairs (x L
# layers) and the LM head last (x 1), each pair nt, nn, tn; see model_gemms.
gemm_bound() {
    awk -v L="$1" -v c="$2" 'FNR == NR { if ($1 == "sgemm") tn[++j] = $c; next }
        $1 == "sgemm" { i++; ms += (i <= 12 ? L : 1) * (i % 3 == 0 ? tn[i / 3] : $c) } END { printf "%.1f", ms }' \
        "$W/$3_beta1.txt" "$W/$3.txt"
}
sgemm_ceiling() { # KT NAME SHAPES...
    local kt=$1 name=$2; shift 2
    local f=sgemm_${name}_$kt
    sgemm_run "$f.txt" "$@"
    CEIL_OF[$name,$kt]=$(awk '$1 == "max" { print $2 }' "$W/$f.txt")
    CEIL_AT_OF[$name,$kt]=$(awk '$1 == "max" { print $3 " " $4 }' "$W/$f.txt")
    # The same weight-gradient (tn) GEMMs with beta 1, as the model calls
    # them (they accumulate): OpenBLAS then skips its pass that zeroes C.
    # Printed beside the ceiling, not folded into it.
    local tn; tn=$(printf '%s\n' "$@" | grep ':tn$' | tr '\n' ' ')
    # shellcheck disable=SC2086
    sgemm_run "${f}_beta1.txt" --beta 1 $tn
    BETA1_OF[$name,$kt]=$(awk '$1 == "max" { print $2 " (" $3 " " $4 ")" }' "$W/${f}_beta1.txt")
    # What a step can expect instead: the same products on cold operands
    # (--cold: read from memory, as in a step that touched every weight and
    # activation since) at their median repetition, not the best.
    sgemm_run "${f}_cold.txt" --cold "$@"
    # shellcheck disable=SC2086
    sgemm_run "${f}_cold_beta1.txt" --cold --beta 1 $tn
    BOUND_MS_OF[$name,$kt]=$(gemm_bound "${LAYERS_OF[$name]}" 6 "$f")            # best, in cache
    BOUND_MED_MS_OF[$name,$kt]=$(gemm_bound "${LAYERS_OF[$name]}" 8 "${f}_cold")  # median, cold
    [ -n "${CEIL_OF[$name,$kt]}" ] || die "tools/sgemm_bench printed no maximum"
    grep -q "core $( [ "$kt" = native ] && echo "$NATIVE_CORE" || echo "$PIN_CORE"))" "$W/$f.txt" ||
        die "sgemm ran another kernel than $(klabel "$kt")"
}

# ------------------------------------------------------------------ model files --
if [ $SMOKE = 0 ]; then
    ensure_model "$SMALL_MODEL" 4 4 256 256 256 128
    SMALL_INIT=(--init-from "$SMALL_MODEL")
    read -r SMALL_FPT SMALL_N < <(flops_per_token "$SMALL_MODEL" 128)
else
    SMALL_INIT=()   # a random init: no PyTorch to write the shared model file
    read -r SMALL_FPT SMALL_N < <(awk 'BEGIN { L = 4; C = 256; Vp = 256; maxT = 128; T = 128
        N = Vp*C + maxT*C + L*(12*C*C + 13*C) + 2*C; printf "%.0f %.0f\n", 6*N + 12*L*T*C, N }')
fi
SMALL_ARGS=(--config configs/small.conf --data-path "$SMALL_DATA" ${SMALL_INIT[@]+"${SMALL_INIT[@]}"} --data-order sequential)
if [ $QUICK = 0 ]; then
    ensure_model "$BIG_MODEL" 12 12 768 50257 50304 1024
    ensure_data "$BIG_DATA" 100000 50257
    read -r BIG_FPT BIG_N < <(flops_per_token "$BIG_MODEL" 64)
fi
best_round() { # PREFIX ROUNDS -> tag of the round with the lowest median
    local r best="" bm=""
    for r in $(seq 1 "$2"); do
        local m; m=$(med "$1_$r")
        if [ -z "$bm" ] || awk -v a="$m" -v b="$bm" 'BEGIN { exit !(a < b) }'; then bm=$m; best="$1_$r"; fi
    done
    echo "$best"
}

# ------------------------------------------------------------------ PyTorch --
# Its own BLAS: OPENBLAS_CORETYPE does not reach it, so it runs once per shape.
ST="" BT=""
if [ $SMOKE = 0 ]; then
    for r in $(seq 1 $ROUNDS); do run_torch "small_t_$r" --model "$SMALL_MODEL" --data "$SMALL_DATA" --steps "$SMALL_ITERS" --batch 4 --seq 128; done
    ST=$(best_round small_t $ROUNDS)
    if [ $QUICK = 0 ]; then
        for r in $(seq 1 $BIG_ROUNDS); do run_torch "big_t_$r" --model "$BIG_MODEL" --data "$BIG_DATA" --steps "$BIG_ITERS" --batch 4 --seq 64; done
        BT=$(best_round big_t $BIG_ROUNDS)
    fi
fi

# ------------------------------------------------------------------ per kernel --
# The small shape on the two cores split as 2 ranks x 1 thread, against
# 1 rank x 2 threads on the same batches (micro-batch 2, global batch 8, so
# PP 2 has micro-batches to pipeline and DP 2 has samples to split).
PAR_ARGS=("${SMALL_ARGS[@]}" --micro-batch-size 2 --global-batch-size 8 --train-iters "$SMALL_ITERS" --log-interval "$SMALL_ITERS")
if [ $SMOKE = 1 ]; then
    PAR_LAYOUTS=("1 rank|1|" "DP 2 + overlap|2|--overlap-grad-reduce")
else
    PAR_LAYOUTS=("1 rank|1|" "TP 2|2|--tensor-model-parallel-size 2" "TP 2 + SP|2|--tensor-model-parallel-size 2 --sequence-parallel"
                 "PP 2|2|--pipeline-model-parallel-size 2" "PP 2 1F1B M 8|2|--pipeline-model-parallel-size 2 --micro-batch-size 1"
                 "DP 2|2|" "DP 2 + overlap|2|--overlap-grad-reduce --ddp-bucket-size 100000")
fi
run_par() { # TAG NP FLAGS...
    local tag=$1 np=$2; shift 2
    local t=$((THREADS / np)); [ $t -lt 1 ] && t=1
    rm -f "$W/$tag.jsonl"
    local cmd=(${K_PRE[@]+"${K_PRE[@]}"} env OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t OMP_WAIT_POLICY=PASSIVE tools/mpirun.sh "$np" "$PG" "${PAR_ARGS[@]}" "$@"
               --metrics-file "$W/$tag.jsonl" --log-memory)
    record "${cmd[@]}"
    say "$tag: ${cmd[*]}"
    "${cmd[@]}" > "$W/$tag.log" 2>&1 || { tail -n 5 "$W/$tag.log" >&2; die "$tag failed (log: $W/$tag.log)"; }
    awk -v w=$WARMUP -F'"ms_per_iter": ' '{ split($0, a, "\"iteration\": "); split(a[2], b, ","); sub(/}.*/, "", $2)
        if (b[1] + 0 > w) print $2 }' "$W/$tag.jsonl" > "$W/$tag.ms"
    [ -s "$W/$tag.ms" ] || die "$tag: no timed iterations in $W/$tag.jsonl"
}
declare -A SC_OF SCP_OF BC_OF PAR_OF
for KT in "${KERNELS[@]}"; do
    kpre "$KT"
    # shellcheck disable=SC2046
    sgemm_ceiling "$KT" small $(model_gemms 512 256 1024 256)
    [ $QUICK = 0 ] && sgemm_ceiling "$KT" big $(model_gemms 256 768 3072 50304)
    # The headline runs carry tools/gemm_profile.so, which times each GEMM
    # after the warm-up steps' calls (12 L + 3 a step): the same steps'
    # time inside and outside the GEMMs (gemm_row). Two clock reads a call.
    # (A relative LD_PRELOAD: the loader splits the variable at spaces, and
    # the runs start in the repository's root.)
    small_c()  { C_ENV=(LD_PRELOAD=tools/gemm_profile.so GEMM_PROFILE_SKIP_CALLS=$((WARMUP * GEMMS_OF[small])))
                 run_c "small_c_${KT}_$1" "${SMALL_ARGS[@]}" --train-iters "$SMALL_ITERS" --log-interval "$SMALL_ITERS"; C_ENV=(); }
    small_cp() { C_ENV=(OMP_WAIT_POLICY=ACTIVE); run_c "small_cp_${KT}_$1" "${SMALL_ARGS[@]}" --train-iters "$SMALL_ITERS" --log-interval "$SMALL_ITERS"; C_ENV=(); }
    for r in $(seq 1 $ROUNDS); do
        if [ $((r % 2)) = 1 ]; then small_c "$r"; small_cp "$r"; else small_cp "$r"; small_c "$r"; fi
    done
    SC_OF[$KT]=$(best_round "small_c_$KT" $ROUNDS); SCP_OF[$KT]=$(best_round "small_cp_$KT" $ROUNDS)
    if [ $QUICK = 0 ]; then
        for r in $(seq 1 $BIG_ROUNDS); do
            C_ENV=(LD_PRELOAD=tools/gemm_profile.so GEMM_PROFILE_SKIP_CALLS=$((WARMUP * GEMMS_OF[big])))
            run_c "big_c_${KT}_$r" --init-from "$BIG_MODEL" --train-data-path "$BIG_DATA" --seq-length 64 --micro-batch-size 4 \
                --global-batch-size 4 --hidden-dropout 0 --attention-dropout 0 --data-order sequential --train-iters "$BIG_ITERS"
            C_ENV=()
        done
        BC_OF[$KT]=$(best_round "big_c_$KT" $BIG_ROUNDS)
    fi
    # In rounds, every layout once per round, so a change in the machine's
    # load hits the 1-rank run and the layouts alike; each one's best round.
    # Every other round runs them in reverse: a run's place in a fixed
    # order moved its time by 3-4% (tools/bench-ab.sh, 2026-12-03), and
    # the 1-rank run, the ratios' denominator, would always go first.
    for r in $(seq 1 $ROUNDS); do
        order=("${!PAR_LAYOUTS[@]}")
        [ $((r % 2)) = 0 ] && mapfile -t order < <(printf '%s\n' "${order[@]}" | tac)
        for i in "${order[@]}"; do
            IFS='|' read -r _ np flags <<< "${PAR_LAYOUTS[$i]}"
            # shellcheck disable=SC2086
            run_par "par_${KT}_${i}_$r" "$np" $flags
        done
    done
    for i in "${!PAR_LAYOUTS[@]}"; do PAR_OF[$KT,$i]=$(best_round "par_${KT}_$i" $ROUNDS); done
done
K_PRE=()
HEAD=${KERNELS[0]}
SC=${SC_OF[$HEAD]} SCP=${SCP_OF[$HEAD]} BC=${BC_OF[$HEAD]:-}

LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$((SECONDS - T_START))

# ------------------------------------------------------------------ report --
# rss_vs TAG: "peak RSS / accounted" in MiB from the trainer's own
# --log-memory lines (rank 0: VmHWM after training, accounted total).
rss_vs() {
    sed -n 's/^peak RSS (rank 0): \([0-9]*\) bytes; accounted \([0-9]*\), before the model \([0-9]*\);.*/\1 \2 \3/p' "$W/$1.log" |
        awk '{ printf "%.0f / %.0f (%+.0f%%) | %.0f (%+.0f%%)", $1 / 1048576, $2 / 1048576, 100 * ($1 / $2 - 1),
               ($1 - $3) / 1048576, 100 * (($1 - $3) / $2 - 1) }'
}
# row SHAPE LAYOUT IMPL TAG TOKENS_PER_STEP FLOPS_PER_TOKEN TORCH_TAG [RSS]
row() {
    local m tm rss=${8:-}
    m=$(med "$4"); tm=nan; [ "$7" != - ] && tm=$(med "$7")
    [ -z "$rss" ] && rss=$(rss_vs "$4")
    awk -v shape="$1" -v layout="$2" -v impl="$3" -v ms="$m" -v tok="$5" -v fpt="$6" -v ceil="$CEIL" -v tms="$tm" -v rss="$rss" 'BEGIN {
        tps = tok / (ms / 1000); gf = fpt * tps / 1e9; ttps = tok / (tms / 1000)
        tc = (tms == "nan") ? "" : sprintf("%.0f", ttps); rc = (tms == "nan") ? "" : sprintf("%.2f", tps / ttps)
        printf "| %s | %s | %s | %.1f | %.0f | %.1f | %.0f%% | %s | %s | %s |\n", shape, layout, impl, ms, tps, gf, 100 * gf / ceil, tc, rc, rss }'
}
# bound_row SHAPE NAME KT TOKENS_PER_STEP FLOPS_PER_TOKEN: the GEMM-only
# bounds, at the best repetitions' rates (operands in cache) and at the
# median ones on cold operands
bound_row() {
    local which ms
    for which in "best rates measured above" "median rates on cold operands (--cold)"; do
        if [ "${which%% *}" = best ]; then ms=${BOUND_MS_OF[$2,$3]}; else ms=${BOUND_MED_MS_OF[$2,$3]}; fi
        awk -v shape="$1" -v ms="$ms" -v tok="$4" -v fpt="$5" -v ceil="$CEIL" -v k="$(klabel "$3")" -v w="$which" 'BEGIN {
            tps = tok / (ms / 1000); gf = fpt * tps / 1e9
            printf "| %s | GEMMs only, at the %s | bound: sgemm_bench, %s | %.1f | %.0f | %.1f | %.0f%% | | | | |\n", shape, w, k, ms, tps, gf, 100 * gf / ceil }'
    done
}
# gemm_row SHAPE TAG CALLS_PER_STEP: the GEMMs inside the timed steps of
# run TAG (tools/gemm_profile.so's total in its log): their milliseconds a
# step and their own GFLOP/s against the ceiling, and the rest of those
# steps (both means over the same timed steps; the run's row above gives
# the median). The call count must be the timed steps' (CALLS_PER_STEP
# each), else the row says so.
gemm_row() {
    local tot; tot=$(grep -m1 'gemm_profile\[[0-9]*\]: total calls' "$W/$2.log" || true)
    [ -n "$tot" ] || { echo "| $1 | GEMMs inside those steps: no tools/gemm_profile.so report in $W/$2.log | | | | | | | | | |"; return; }
    awk -v shape="$1" -v t="$tot" -v cps="$3" -v ceil="$CEIL" '{ steps++; sum += $1 } END {
        split(t, a, " calls "); split(a[2], b, " "); calls = b[1]; ms = b[3]; gf = b[7]
        if (calls != steps * cps) { printf "| %s | GEMMs inside those steps: %d calls, not %d steps x %d | | | | | | | | | |\n", shape, calls, steps, cps; exit }
        per = ms / steps
        printf "| %s | GEMMs inside those steps (tools/gemm_profile.so: %d calls; a step %.1f ms on average, %.1f of them outside the GEMMs; GFLOP/s and %% are the GEMMs\x27 own) | megatron.c, the row above | %.1f | | %.1f | %.0f%% | | | | |\n", shape, calls, sum / steps, sum / steps - per, per, gf, 100 * gf / ceil }' "$W/$2.ms"
}
mem_row() { # LABEL TAG
    local line; line=$(grep -m1 '^memory (rank 0' "$W/$2.log" || true)
    local k vals=()
    for k in parameters gradients optimizer activations workspace total; do
        vals+=("$(echo "$line" | sed -n "s/.* $k \\([0-9]*\\) .*/\\1/p")")
    done
    awk -v l="$1" -v rss="$(awk 'END { print $1 }' "$W/$2.rss")" -v p="${vals[0]}" -v g="${vals[1]}" -v o="${vals[2]}" \
        -v a="${vals[3]}" -v w="${vals[4]}" -v t="${vals[5]}" 'BEGIN { M = 1048576
        printf "| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", l, rss / 1024, p / M, g / M, o / M, a / M, w / M, t / M, rss / 1024 - t / M }'
}
steps_list() { local r s=""; for r in $(seq 1 "$2"); do s="$s${s:+ / }$(awk '{ printf "%s%.0f", (NR > 1 ? " " : ""), $1 }' "$W/$1_$r.ms")"; done; echo "$s"; }

REPORT=$W/report.md
{
    echo "# megatron.c speed report"
    echo
    echo "- date: $DATE; megatron.c $REV; C runs use $PG, a copy of ./pretrain_gpt (built $PG_WHEN)"
    echo "- machine: $CPU, $NCPU logical CPUs ($(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) usable), $MEM_GIB GiB RAM; load average $LOAD0 at start, $LOAD1 at end"
    echo "- threads: $THREADS per run (OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = $THREADS), one process, no MPI launcher"
    echo "- BLAS: $BLAS_CORE; PyTorch $TORCH_VERSION (float32)"
    echo "- ms/iter: median of the steps after $WARMUP warm-up steps, best round; small shape $SMALL_ITERS steps x $ROUNDS round(s)$( [ $QUICK = 0 ] && echo ", 124M $BIG_ITERS steps x $BIG_ROUNDS round(s)"), C and PyTorch back to back"
    echo "- CPU features: $FEATURES"
    echo "- OpenBLAS core: $(klabel "$HEAD")$( [ ${#KERNELS[@]} -gt 1 ] && echo "; also $(klabel pinned): every C row runs with both, the native one is the headline")"
    echo "- model FLOPs/token = 6N + 12*L*T*h; sgemm ceiling per shape and kernel = best cblas_sgemm over the model's own GEMMs (nt, nn, tn; LM head included; attention's batched GEMMs not)"
    echo "- GEMMs-only bound: the step time if the model ran only its linear layers' GEMMs (per layer x L, LM head once), each at the rate measured for the ceiling (weight gradients with beta 1, as the model runs them; the qkv and fc1 forwards, which the model also runs with beta 1, at beta 0); model FLOP/s at that time is about the most the ceiling's share could be with every other op free. Two rows: at each product's best repetition with its operands in cache (as the ceiling), and at its median repetition on cold operands (tools/sgemm_bench --cold: a new operand set each time, read from memory): a step runs each product once, on weights and activations it has not touched since, so that is what it can expect"
    for KT in "${KERNELS[@]}"; do
        echo "- weight-gradient GEMMs (tn) with beta 1, as the model calls them (accumulating; OpenBLAS skips zeroing C), $(klabel "$KT"): best ${BETA1_OF[small,$KT]} GFLOP/s small$( [ $QUICK = 0 ] && echo ", ${BETA1_OF[big,$KT]} 124M"), beside the beta-0 ceiling"
    done
    echo "- $( [ $SMOKE = 1 ] && echo 'SMOKE run (--smoke): the machinery only, numbers meaningless; ' )$( [ $QUICK = 1 ] && echo 'quick run: small shape only; ' )wall time of the benchmark: ${ELAPSED} s"
    echo
    echo "| shape | layout | impl | ms/iter | tokens/s | model GFLOP/s | % of sgemm ceiling | PyTorch tokens/s | ratio vs PyTorch | peak RSS / accounted (MiB, rank 0) | peak RSS - RSS before the model (vs accounted) |"
    echo "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|"
    L1="1 rank x $THREADS threads"
    SMALL="small: L4 h256 a4 V256, B4 T128" BIG="GPT-2 124M: L12 h768 a12 V50304, B4 T64"
    for KT in "${KERNELS[@]}"; do
        K=$(klabel "$KT")
        CEIL=${CEIL_OF[small,$KT]}
        echo "| sgemm ceiling, small (${CEIL_AT_OF[small,$KT]}) | | OpenBLAS, $K | | | $CEIL | 100% | | | | |"
        bound_row "$SMALL" small "$KT" 512 "$SMALL_FPT"
        row "$SMALL" "$L1" "megatron.c, $K" "${SC_OF[$KT]}" 512 "$SMALL_FPT" "${ST:--}"
        gemm_row "$SMALL" "${SC_OF[$KT]}" "${GEMMS_OF[small]}"
        row "$SMALL" "$L1" "megatron.c, $K, OMP_WAIT_POLICY=ACTIVE (spinning)" "${SCP_OF[$KT]}" 512 "$SMALL_FPT" "${ST:--}"
        for i in "${!PAR_LAYOUTS[@]}"; do
            IFS='|' read -r name np _ <<< "${PAR_LAYOUTS[$i]}"
            lay="$name, $np x $((THREADS / np > 0 ? THREADS / np : 1))"
            row "small, global batch 8" "$lay" "megatron.c, $K" "${PAR_OF[$KT,$i]}" 1024 "$SMALL_FPT" -
        done
        if [ $QUICK = 0 ]; then
            CEIL=${CEIL_OF[big,$KT]}
            echo "| sgemm ceiling, 124M (${CEIL_AT_OF[big,$KT]}) | | OpenBLAS, $K | | | $CEIL | 100% | | | | |"
            bound_row "$BIG" big "$KT" 256 "$BIG_FPT"
            row "$BIG" "$L1" "megatron.c, $K" "${BC_OF[$KT]}" 256 "$BIG_FPT" "$BT"
            gemm_row "$BIG" "${BC_OF[$KT]}" "${GEMMS_OF[big]}"
        fi
    done
    if [ -n "$ST" ]; then
        CEIL=${CEIL_OF[small,$HEAD]}
        row "$SMALL" "$L1" "PyTorch (% of the headline ceiling)" "$ST" 512 "$SMALL_FPT" "$ST" "$(rss_mib "$W/$ST.rss") / - | "
    fi
    if [ -n "$BT" ]; then
        CEIL=${CEIL_OF[big,$HEAD]}
        row "$BIG" "$L1" "PyTorch (% of the headline ceiling)" "$BT" 256 "$BIG_FPT" "$BT" "$(rss_mib "$W/$BT.rss") / - | "
    fi
    echo
    for KT in "${KERNELS[@]}"; do
        echo "Layouts on the same cores, $(klabel "$KT") (small shape, global batch 8; 1 rank x $THREADS threads time over the layout's, same batches; best of $ROUNDS round(s), every layout once per round$( [ $ROUNDS -gt 1 ] && echo ', in reverse every other round')):"
        for i in "${!PAR_LAYOUTS[@]}"; do
            IFS='|' read -r name _ _ <<< "${PAR_LAYOUTS[$i]}"
            # Each round's own ratio too: the bars' margins are a few
            # percent, about the spread between rounds.
            per=""
            if [ "$ROUNDS" -gt 1 ] && [ "$i" -gt 0 ]; then
                for r in $(seq 1 "$ROUNDS"); do
                    per="$per $(awk -v a="$(med "par_${KT}_0_$r")" -v b="$(med "par_${KT}_${i}_$r")" 'BEGIN { printf "%.2f", a / b }')"
                done
                per=" (round by round:$per)"
            fi
            awk -v n="$name" -v a="$(med "${PAR_OF[$KT,0]}")" -v b="$(med "${PAR_OF[$KT,$i]}")" -v p="$per" 'BEGIN { printf "%s %.2f%s; ", n, a / b, p }'
        done
        echo
    done
    echo
    if [ -n "$ST" ]; then
        echo "Same model, same batches: step-1 loss small C $(cat "$W/$SC.loss1"), PyTorch $(cat "$W/$ST.loss1")$(
            [ $QUICK = 0 ] && echo "; 124M C $(cat "$W/$BC.loss1"), PyTorch $(cat "$W/$BT.loss1")")."
    fi
    echo "N = $SMALL_N (small)$( [ $QUICK = 0 ] && echo ", $BIG_N (124M)") parameters; FLOPs/token = $SMALL_FPT (small)$( [ $QUICK = 0 ] && echo ", $BIG_FPT (124M)")."
    echo "Per-step times after warm-up (ms), one group per round, headline kernel:"
    echo "small C $(steps_list "small_c_$HEAD" $ROUNDS); C with OMP_WAIT_POLICY=ACTIVE $(steps_list "small_cp_$HEAD" $ROUNDS)$(
        [ -n "$ST" ] && echo "; PyTorch $(steps_list small_t $ROUNDS)")$(
        [ $QUICK = 0 ] && echo "; 124M C $(steps_list "big_c_$HEAD" $BIG_ROUNDS); PyTorch $(steps_list big_t $BIG_ROUNDS)")."
    echo -n "Warm-up iterations 1, 2 of the C trainer (ms): small $(cat "$W/$SC.warm")"
    [ $QUICK = 0 ] && echo -n "; 124M $(cat "$W/$BC.warm")"
    echo "."
    [ -n "$ST" ] && echo "PyTorch's own --bench mean (steps 2..N, ms): small $(cat "$W/$ST.own")$( [ $QUICK = 0 ] && echo ", 124M $(cat "$W/$BT.own")")."
    echo
    echo "### Memory (MiB): peak RSS vs the trainer's --log-memory accounting"
    echo
    echo "Peak RSS by $RSS_HOW."
    echo
    echo "| run | peak RSS | parameters | gradients | optimizer | activations | workspace | accounted total | RSS - accounted |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    mem_row "megatron.c, small" "$SC"
    [ $QUICK = 0 ] && mem_row "megatron.c, GPT-2 124M" "$BC"
    [ -n "$ST" ] && echo "| PyTorch, small | $(rss_mib "$W/$ST.rss") | | | | | | | |"
    [ -n "$BT" ] && echo "| PyTorch, GPT-2 124M | $(rss_mib "$W/$BT.rss") | | | | | | | |"
    echo
    echo "### sgemm ($THREADS threads, best of the repetitions)"
    echo
    echo "| shape, kernel | M x N x K | layout | ms | GFLOP/s |"
    echo "|---|---|---|---:|---:|"
    for f in "$W"/sgemm_*_*.txt; do
        awk -v k="$(basename "$f" .txt | sed 's/^sgemm_//; s/_/, /')" '$1 == "sgemm" { printf "| %s | %sx%sx%s | %s | %s | %s |\n", k, $2, $3, $4, $5, $6, $7 }' "$f"
    done
    echo
    echo "Layouts (row-major, as src/cpu/matmul.c calls them): nt = forward (inp @ W^T), nn = input gradient (dout @ W), tn = weight gradient (dout^T @ inp)."
    echo
    echo "### Commands"
    echo
    echo '```'
    for c in "${CMDS[@]}"; do echo "$c"; done
    echo '```'
    echo
    echo "Logs: $W/. The machine may be shared: compare rows of one report, not across reports."
} > "$REPORT"
# The kept report is a full run's; --smoke leaves out/ alone.
[ $SMOKE = 0 ] && cp "$REPORT" out/bench.md
cat "$REPORT"
