#!/usr/bin/env bash
# tools/bench-cuda.sh: what `make bench CUDA=1` runs on a machine with an
# NVIDIA GPU. GPT-2 124M's shape (configs/gpt2-124m.conf: 12 layers, 768,
# 12 heads, vocab 50257 padded to 50304), trained from the trainer's own
# initialisation on random tokens, by ./pretrain_gpt_cuda (one GPU) and by
# ./pretrain_gpt (one process, every core) side by side, at two sizes:
# issue 7's B=4, T=64 (256 tokens a step: launch-bound on a GPU) and B=8,
# T=1024 (8192 tokens a step).
#
# Printed as Markdown and written to out/bench-cuda.md: ms/iter (median
# after 2 warm-up steps), tokens/s, model GFLOP/s (6N + 12·L·T·h per token),
# and for the GPU the share of its fp32 peak: SMs × 128 fp32 lanes × 2
# (FMA) × the maximum SM clock (nvidia-smi). Products run in plain fp32
# (no TF32), the precision the oracle comparisons hold the backend to; one
# more row runs B=8, T=1024 with --tf32 (TF32 tensor cores, opt-in), as a
# share of the TF32 dense peak: SMs × TF32 FLOPs per SM per clock (sm_80
# 1024, sm_90 2048, from NVIDIA's A100/H100 datasheets) × the clock.
#
#   tools/bench-cuda.sh            both sizes
#   BENCH_CPU=0 tools/bench-cuda.sh    GPU rows only
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C
W=out/bench-cuda
mkdir -p "$W"
say() { echo "bench-cuda: $*" >&2; }
die() { echo "bench-cuda.sh: error: $*" >&2; exit 1; }
[ -x ./pretrain_gpt_cuda ] || die "./pretrain_gpt_cuda missing: make CUDA=1"
[ -x ./pretrain_gpt ] || die "./pretrain_gpt missing: make"
nvidia-smi -L 2>/dev/null | grep -q '^GPU' || die "no NVIDIA GPU here (nvidia-smi lists none)"

GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
MAXCLK=$(nvidia-smi --query-gpu=clocks.max.sm --format=csv,noheader,nounits | head -n 1)
CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
CORES=$(nproc --all)

# Random GPT-2 tokens in llm.c's format (header 20240520, version 1, count).
DATA=$W/tokens.bin
if [ ! -f "$DATA" ]; then
    python3 - "$DATA" <<'EOF'
import random, struct, sys
n = 200000
random.seed(1)
hdr = struct.pack('<256i', 20240520, 1, n, *([0] * 253))
with open(sys.argv[1], 'wb') as f:
    f.write(hdr)
    f.write(struct.pack('<%dH' % n, *(random.randrange(50257) for _ in range(n))))
EOF
fi

# run BIN TAG B T ITERS "FLAGS" [env...]: per-step ms after 2 warm-up steps into TAG.ms
run() {
    local bin=$1 tag=$2 b=$3 t=$4 iters=$5 flags=$6; shift 6
    # shellcheck disable=SC2206
    local extra=($flags)
    # Learned positions: GPT-2's 1024, or as many as the sequence past that.
    [ "$t" -gt 1024 ] && extra+=(--max-position-embeddings "$t")
    local cmd=(env "$@" "$bin" ${extra[@]+"${extra[@]}"} --config configs/gpt2-124m.conf --train-data-path "$DATA" --micro-batch-size "$b"
               --global-batch-size "$b" --seq-length "$t" --train-iters "$iters" --log-interval 1000
               --metrics-file "$W/$tag.jsonl")
    rm -f "$W/$tag.jsonl"
    say "$tag: ${cmd[*]}"
    "${cmd[@]}" > "$W/$tag.log" 2>&1 || { tail -n 3 "$W/$tag.log" >&2; die "$tag failed"; }
    awk -F'"ms_per_iter": ' '{ split($0, a, "\"iteration\": "); split(a[2], b, ","); sub(/}.*/, "", $2)
        if (b[1] + 0 > 2) print $2 }' "$W/$tag.jsonl" | sort -g |
        awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }' > "$W/$tag.ms"
}
# N = Vp·h + maxT·h + L(12h² + 13h) + 2h (maxT = max(1024, T)); FLOPs/token = 6N + 12·L·T·h
fpt() { awk -v T="$1" 'BEGIN { h = 768; L = 12; P = T > 1024 ? T : 1024; N = 50304*h + P*h + L*(12*h*h + 13*h) + 2*h; printf "%.0f", 6*N + 12*L*T*h }'; }

rows=()
# B T ATTENTION CPU?: the blocked attention (--use-flash-attn) on the GPU
# only, with its shared-memory tiles (flash, the default) and with the
# one-warp-per-row kernels they replaced (flash-rows,
# MT_CUDA_FLASH_KERNEL=rows); at T 4096 against the plain kernel too (issue
# 17's bar: within 1.5x of plain at T 1024, ahead of it at T 4096).
for shape in "4 64 plain 1" "8 1024 plain 1" "8 1024 flash 0" "8 1024 flash-rows 0" "8 1024 tf32 0" \
             "2 4096 plain 0" "2 4096 flash 0" "2 4096 flash-rows 0"; do
    read -r b t att with_cpu <<< "$shape"
    flags=""; envs=()
    case $att in
        flash) flags="--use-flash-attn" ;;
        flash-rows) flags="--use-flash-attn"; envs=(MT_CUDA_FLASH_KERNEL=rows) ;;
        tf32) flags="--tf32" ;;
    esac
    tag="b${b}_t${t}_$att"
    iters=12; [ "$t" -ge 4096 ] && iters=8  # 2 warm-up steps, then the median of the rest
    run ./pretrain_gpt_cuda "gpu_$tag" "$b" "$t" $iters "$flags" ${envs[@]+"${envs[@]}"}
    cpu_ms=nan
    if [ "${BENCH_CPU:-1}" = 1 ] && [ "$with_cpu" = 1 ]; then
        # The CPU takes ~30 s a step at T=1024: 2 warm-up steps and 1 timed.
        cpu_iters=5; [ "$t" -ge 1024 ] && cpu_iters=3
        run ./pretrain_gpt "cpu_$tag" "$b" "$t" $cpu_iters "$flags" OMP_NUM_THREADS="$CORES" OPENBLAS_NUM_THREADS="$CORES" OMP_WAIT_POLICY=PASSIVE
        cpu_ms=$(cat "$W/cpu_$tag.ms")
    fi
    rows+=("$b $t $att $(cat "$W/gpu_$tag.ms") $cpu_ms $(fpt "$t")")
done
# The trainer's "backend: cuda (device 0: NAME, sm_90, 132 SMs, ...)" line.
SMS=$(sed -n 's/.* \([0-9][0-9]*\) SMs.*/\1/p' "$W/gpu_b4_t64_plain.log" | head -n 1)
PEAK=$(awk -v s="${SMS:-0}" -v c="$MAXCLK" 'BEGIN { printf "%.1f", s * 128 * 2 * c / 1e6 }')
SM=$(sed -n 's/.*, sm_\([0-9]*\),.*/\1/p' "$W/gpu_b4_t64_plain.log" | head -n 1)
case "$SM" in 80) TF32_PER=1024 ;; 90) TF32_PER=2048 ;; *) TF32_PER=0 ;; esac
TF32_PEAK=$(awk -v s="${SMS:-0}" -v c="$MAXCLK" -v k="$TF32_PER" 'BEGIN { printf "%.1f", s * k * c / 1e6 }')

{
    echo "## make bench CUDA=1 ($(date -u +%Y-%m-%d), $GPU, ${SMS:-?} SMs at up to $MAXCLK MHz: fp32 peak $PEAK TFLOP/s, TF32 dense peak $( [ "$TF32_PER" = 0 ] && echo "unknown for sm_${SM:-?}" || echo "$TF32_PEAK TFLOP/s"); CPU: $CPU, $CORES cores)"
    echo
    echo "| shape (GPT-2 124M) | attention | tokens/step | GPU ms/iter | GPU tokens/s | GPU model TFLOP/s | share of fp32 peak | CPU ms/iter ($CORES threads) | CPU tokens/s | GPU / CPU |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for r in "${rows[@]}"; do
        read -r b t att g c f <<< "$r"
        pk=$PEAK; [ "$att" = tf32 ] && pk=$TF32_PEAK
        awk -v b="$b" -v t="$t" -v att="$att" -v g="$g" -v c="$c" -v f="$f" -v peak="$pk" 'BEGIN {
            if (att == "tf32") att = "plain, --tf32 (share of the TF32 peak)"
            tok = b * t; gt = tok / (g / 1000); tf = gt * f / 1e12
            ct = (c == "nan") ? "n/a" : sprintf("%.0f", tok / (c / 1000))
            ratio = (c == "nan") ? "n/a" : sprintf("%.1fx", c / g)
            printf "| B=%d, T=%d | %s | %d | %.1f | %.0f | %.2f | %s | %s | %s | %s |\n", b, t, att, tok, g, gt, tf, (peak > 0) ? sprintf("%.1f%%", 100 * tf / peak) : "n/a", (c == "nan") ? "n/a" : sprintf("%.0f", c), ct, ratio }'
    done
    echo
    # The blocked attention against the plain kernel, step for step.
    for t in 1024 4096; do
        awk -v t="$t" -v p="$(cat "$W"/gpu_b*_t${t}_plain.ms)" -v f="$(cat "$W"/gpu_b*_t${t}_flash.ms)" \
            -v r="$(cat "$W"/gpu_b*_t${t}_flash-rows.ms)" 'BEGIN {
            printf "T=%d: blocked attention, tiles %.2fx the plain step (rows kernel %.2fx); tiles %.2fx faster than rows\n", t, f / p, r / p, r / f }'
    done
    echo
    echo "Commands: $W/*.log head lines; per-step times in $W/*.jsonl."
} | tee out/bench-cuda.md
