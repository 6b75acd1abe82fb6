#!/usr/bin/env bash
# suite_papers.sh: the papers' accounting, measured. Activation memory taken
# from the allocator equals this trainer's formula (include/account.h) for
# every mode of Korthikanti et al. Table 2 on two shapes, the formula being
# re-derived here by hand; the planner's numbers equal the trainer's.
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
c=$(test_corpus)

# act_formula S B H A T SP MODE: bytes per layer and micro-batch (fp32, 4 bytes).
act_formula() {
  local s=$1 b=$2 h=$3 a=$4 t=$5 sp=$6 mode=$7 n nl
  n=$((s * b)); nl=$n; [ "$sp" = 1 ] && nl=$((n / t))
  case $mode in
    full) echo $((4 * nl * h)) ;;
    selective) echo $((4 * (4 * nl * h + 4 * nl + 12 * n * h / t))) ;;
    *) echo $((4 * (4 * nl * h + 4 * nl + 12 * n * h / t + a * s * s * b / t))) ;;
  esac
}
# shape NAME "FLAGS" S B H A
shape() {
  local name=$1 flags=$2 s=$3 b=$4 h=$5 a=$6
  for row in "none:1:0:" "tp:2:0:" "tp_sp:2:1:--sequence-parallel" "tp_selective:2:0:--recompute-granularity selective" \
             "tp_sp_selective:2:1:--sequence-parallel --recompute-granularity selective" "full:2:1:--sequence-parallel --recompute-granularity full"; do
    IFS=: read -r mode t sp extra <<< "$row"
    local m=$mode; [[ $mode == *selective ]] && m=selective
    local want=$(( $(act_formula $s $b $h $a $t $sp $m) * 4 )) line got
    line=$($MPIRUN $t ./pretrain_gpt $flags --data-path "${c}_train.bin" --train-iters 1 --log-memory \
           --tensor-model-parallel-size $t $extra 2>&1 | grep '^activations of rank 0')
    got=$(echo "$line" | sed 's/.*measured \([0-9]*\) bytes.*/\1/')
    # 4 layers x 1 micro-batch in flight (PP 1).
    if [ "$got" = "$want" ] && echo "$line" | grep -q "formula $want bytes"; then ok "activations_${name}_$mode ($got bytes for 4 layers)"
    else not_ok "activations_${name}_$mode" "measured '$got', hand formula $want: $line"; fi
    eval "A_${name}_$mode=$got"
  done
  # The paper's headline ratio, TP+SP+selective over TP, in this storage:
  # (16 nl h + 4 nl + ... ) / (...) as measured, against the formula.
  local r1 r2
  r1=$(awk -v a="$(eval echo \$A_${name}_tp_sp_selective)" -v b="$(eval echo \$A_${name}_tp)" 'BEGIN { printf "%.6f", a / b }')
  r2=$(awk -v x="$(act_formula $s $b $h $a 2 1 selective)" -v y="$(act_formula $s $b $h $a 2 0 none)" 'BEGIN { printf "%.6f", x / y }')
  [ "$r1" = "$r2" ] && ok "ratio_${name}_tp_sp_selective_over_tp ($r1; the paper's 2-byte/mask storage gives $(awk -v s=$s -v h=$h -v a=$a 'BEGIN { printf "%.3f", 34 / (20 + 24 + 5 * a * s / h) }'))" ||
    not_ok "ratio_${name}_tp_sp_selective_over_tp" "measured $r1, formula $r2"
}
shape tiny "--num-layers 4 --hidden-size 32 --num-attention-heads 4 --seq-length 16 --micro-batch-size 2 --global-batch-size 2" 16 2 32 4
shape wide "--num-layers 4 --hidden-size 64 --num-attention-heads 8 --seq-length 32 --micro-batch-size 1 --global-batch-size 1" 32 1 64 8

# Context parallelism (tiny shape, C = 2, no TP): each rank holds n = s/C b
# rows. The blocked kernels (ring, all-gather, all-to-all with
# --use-flash-attn) keep one log-sum-exp per row and head (a n); the plain
# kernel after the all-to-all keeps a/C heads' probabilities over the whole
# sequence, a/C s^2 b = a n s. By hand, per layer (4-byte elements):
# 4 nl h + 4 nl + 12 n h + that.
cp_rows() {
  local s=16 b=2 h=32 a=4 C=2 n flags kept want line got
  n=$((s / C * b))
  for row in "ring:--context-parallel-size 2:$((a * n))" "allgather:--context-parallel-size 2 --cp-comm-type allgather:$((a * n))" \
             "a2a:--context-parallel-size 2 --cp-comm-type a2a:$((a * n * s))" \
             "a2a_flash:--context-parallel-size 2 --cp-comm-type a2a --use-flash-attn:$((a * n))"; do
    IFS=: read -r name flags kept <<< "$row"
    want=$((4 * 4 * (4 * n * h + 4 * n + 12 * n * h + kept)))
    # shellcheck disable=SC2086
    line=$($MPIRUN 2 ./pretrain_gpt --num-layers 4 --hidden-size $h --num-attention-heads $a --seq-length $s --micro-batch-size $b \
           --global-batch-size $b --data-path "${c}_train.bin" --train-iters 1 --log-memory $flags 2>&1 | grep '^activations of rank 0')
    got=$(echo "$line" | sed 's/.*measured \([0-9]*\) bytes.*/\1/')
    if [ "$got" = "$want" ] && echo "$line" | grep -q "formula $want bytes"; then ok "activations_cp2_$name ($got bytes for 4 layers)"
    else not_ok "activations_cp2_$name" "measured '$got', hand formula $want: $line"; fi
  done
}
cp_rows

# The planner reports what the trainer allocates and sends (TP 2 x PP 2, SP,
# 1F1B, distributed optimizer over DP 2, selective recomputation): every
# category of every stage, byte for byte.
L="--config configs/tiny.conf --data-path ${c}_train.bin --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 --sequence-parallel --use-distributed-optimizer --recompute-granularity selective"
tools/plan $L --world-size 8 > "$T/plan.txt" 2>&1
$MPIRUN 8 ./pretrain_gpt $L --train-iters 1 --log-memory > "$T/train.txt" 2>&1
for stage in 0 1; do
  rank=$((stage * 4))
  p=$(grep "^memory (stage $stage," "$T/plan.txt" | sed 's/^memory (stage [0-9]*, bytes)://')
  t=$(grep "^memory (rank $rank," "$T/train.txt" | sed 's/^memory (rank [^)]*)://; s/ | activation slots.*//')
  [ -n "$p" ] && [ "$p" = "$t" ] && ok "planner_equals_trainer_stage$stage ($p)" || not_ok "planner_equals_trainer_stage$stage" "plan '$p' vs trainer '$t'"
done
# The full-size launch of Megatron's guide plans in well under a second.
timeout 20 tools/plan --config configs/megatron-sp-guide.conf --recompute-granularity selective > "$T/full.txt" 2>&1 &&
  grep -q "bf16 mixed-precision" "$T/full.txt" && ok "planner_full_size_guide ($(grep -m1 'GiB' "$T/full.txt" | sed 's/^ *//' | cut -c1-100))" ||
  not_ok planner_full_size_guide "$(tail -n 2 "$T/full.txt")"

# The timeline. The fixture has interleaving (v 2), TP 2 and DP 2 on 8
# ranks: the Chrome trace names every forward/backward with its micro-batch
# and chunk, every collective with its group, kind and bytes (TP all-reduces
# of s*b*h fp32 values, the DP all-reduce of the whole gradient arena), and
# the SVG, rendered to PNG by rsvg-convert, has its size and is not blank.
$MPIRUN 8 ./pretrain_gpt --config configs/tiny.conf --data-path "${c}_train.bin" --train-iters 2 \
  --pipeline-model-parallel-size 2 --tensor-model-parallel-size 2 --num-layers-per-virtual-pipeline-stage 1 \
  --global-batch-size 16 --timeline "$T/tl.svg" --log-comm > "$T/tl.log" 2>&1
n=$(grep -c '^comm check rank .*: measured == predicted' "$T/tl.log")
[ "$n" = 16 ] && ok "comm_formulas_interleaved_tp_dp (8 ranks x 2 iterations: measured == predicted)" ||
  not_ok comm_formulas_interleaved_tp_dp "$n of 16 checks agree: $(grep -m2 'differs' "$T/tl.log")"
dp_bytes=$(awk '/^comm rank 0 /{on=1} on && $1 == "dp" && $2 == "all-reduce" {print $4; exit}' "$T/tl.log")
if command -v rsvg-convert > /dev/null; then rsvg-convert -o "$T/tl.png" "$T/tl.svg" 2> "$T/rsvg.err"
else echo "rsvg-convert missing (tools/install-deps.sh installs librsvg2-bin)" > "$T/rsvg.err"; fi
if out=$(/usr/bin/python3 - "$T/tl.svg" "$T/tl.json" "$T/tl.png" "$dp_bytes" 2>&1 <<'PY'
import json, re, struct, sys, zlib, xml.etree.ElementTree as ET
svg, js, png, dp_bytes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4] or 0)
root = ET.parse(svg).getroot()
ns = "{http://www.w3.org/2000/svg}"
lanes = [g for g in root.iter(ns + "g") if g.get("class") == "lane"]
assert len(lanes) == 8, "lanes: %d" % len(lanes)
assert all(len(g.findall(ns + "rect")) > 4 for g in lanes), "a lane without spans"
assert all(g.find(ns + "path") is not None for g in lanes), "a lane without its memory line"
texts = [t.text or "" for t in root.iter(ns + "text")]
m = [t for t in texts if t.startswith("pipeline idle fraction: measured")]
assert m and "formula (p-1)/(vM+p-1) = 0.111 (p 2, v 2, M 4)" in m[0], m  # (2-1)/(2*4+2-1) = 1/9
ticks = [t for t in texts if re.fullmatch(r"[0-9.]+( ms)?", t)]
assert len(ticks) >= 4 and "0 ms" in ticks, "time axis ticks: %s" % ticks
thin = [r for g in lanes for r in g.findall(ns + "rect") if r.find(ns + "title") is not None and " collective" not in "" and
        re.match(r"(tp|dp|pp|mp|embd) ", r.find(ns + "title").text)]
assert thin and min(float(r.get("width")) for r in thin) >= 2.0, "collectives narrower than 2 px"
assert any(re.match(r"tp all-reduce, [0-9]+ bytes", r.find(ns + "title").text) for r in thin), "no TP tooltip with bytes"
ev = [e for e in json.load(open(js))["traceEvents"] if e["ph"] == "X"]
assert {e["tid"] for e in ev} == set(range(8))
fb = [e for e in ev if e["cat"] in ("forward", "backward")]
assert all(re.fullmatch(r"[FB] micro-batch %d chunk %d" % (e["args"]["micro_batch"], e["args"]["chunk"]), e["name"]) for e in fb)
assert {e["args"]["chunk"] for e in fb} == {0, 1}, "interleaved chunks"
assert {e["args"]["micro_batch"] for e in fb} == {0, 1, 2, 3}, "micro-batches"
tp = [e for e in ev if e["cat"] == "comm" and e["args"]["group"] == "tp"]
dp = [e for e in ev if e["cat"] == "comm" and e["args"]["group"] == "dp"]
idle = [e for e in ev if e["cat"] == "idle"]
assert tp and all(e["name"] == "tp " + e["args"]["collective"] for e in tp)
assert any(e["args"]["collective"] == "all-reduce" and e["args"]["bytes"] == 16 * 2 * 32 * 4 for e in tp), "a layer's s*b*h all-reduce"
assert dp and all(e["name"] == "dp all-reduce" for e in dp), dp[:1]
assert [e["args"]["bytes"] for e in dp if e["tid"] == 0] == [dp_bytes], ("rank 0's dp all-reduce vs --log-comm", dp_bytes)
# Idle: pipeline receives, the wait for the gradient buckets' DP reduction
# after backward, and the wait for a TP sum posted behind a weight-gradient
# GEMM (layers.c column_backward), which lies inside that sum's comm event.
assert idle and all(e["name"] in ("idle: pp recv", "idle: dp all-reduce", "idle: tp all-reduce") for e in idle), set(e["name"] for e in idle)
for w in (e for e in idle if e["name"] == "idle: tp all-reduce"):
    assert any(c["tid"] == w["tid"] and c["ts"] < w["ts"] and c["ts"] + c["dur"] >= w["ts"] for c in tp), ("a TP wait outside any posted TP sum", w)
assert any(e["name"] == "idle: pp recv" for e in idle)
mem = [e for e in json.load(open(js))["traceEvents"] if e["ph"] == "C"]
assert mem and max(e["args"]["bytes"] for e in mem) > 0 and all(e["args"]["bytes"] >= 0 for e in mem)
# The PNG: size as the SVG says, and a picture (colours, not a blank page).
raw = open(png, "rb").read()
assert raw[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
w, h, depth, ctype = struct.unpack(">IIBB", raw[16:26])
assert (w, h) == (int(root.get("width")), int(root.get("height"))), ((w, h), root.get("width"), root.get("height"))
data, pos = b"", 8
while pos < len(raw):
    n, kind = struct.unpack(">I4s", raw[pos:pos + 8])
    if kind == b"IDAT": data += raw[pos + 8:pos + 8 + n]
    pos += 12 + n
px = zlib.decompress(data)
bpp = {6: 4, 2: 3}[ctype]
stride = w * bpp
rows, prev = [], bytearray(stride)
for y in range(h):
    f, line = px[y * (stride + 1)], bytearray(px[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0; b = prev[i]; c = prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(bytes(line)); prev = line
colours, inked = set(), 0
for y in range(0, h, 2):
    for x in range(0, w, 2):
        p = rows[y][x * bpp:x * bpp + 3]
        colours.add(p); inked += p != b"\xff\xff\xff"
frac = inked / ((h + 1) // 2 * ((w + 1) // 2))
assert frac > 0.15 and len(colours) > 20, "blank-looking PNG: %.3f inked, %d colours" % (frac, len(colours))
print("8 lanes, %d spans, %d tp and %d dp collectives, PNG %dx%d %.0f%% inked, %d colours; %s" %
      (len(fb), len(tp), len(dp), w, h, 100 * frac, len(colours), m[0].split(": ", 1)[1]))
PY
); then ok "timeline_interleaved_tp_dp_svg_png_chrome ($out)"; else not_ok timeline_interleaved_tp_dp_svg_png_chrome "$out $(cat "$T/rsvg.err" 2>/dev/null)"; fi

# tools/plot draws loss curves (an SVG with one path per run); tools/generate
# samples from a checkpoint: with temperature 0 (greedy) twice the same text,
# 40 bytes long, and a different --seed at temperature 1 changes it.
./pretrain_gpt --config configs/tiny.conf --data-path "${c}_train.bin" --train-iters 5 --save "$T/gen" \
  --metrics-file "$T/m1.json" > /dev/null 2>&1
cp "$T/m1.json" "$T/m2.json"
if tools/plot "$T/loss.svg" "a=$T/m1.json" "b=$T/m2.json" > /dev/null 2>&1 &&
   [ "$(grep -c '<path' "$T/loss.svg")" -ge 2 ] && /usr/bin/python3 -c "import xml.etree.ElementTree as E; E.parse('$T/loss.svg')"; then
  ok "plot_two_runs_svg"; else not_ok plot_two_runs_svg "no valid SVG with two curves"; fi
g1=$(tools/generate --load "$T/gen" --prompt "ab" --tokens 40 --temperature 0 2>/dev/null | od -An -c | tr -d ' \n')
g2=$(tools/generate --load "$T/gen" --prompt "ab" --tokens 40 --temperature 0 2>/dev/null | od -An -c | tr -d ' \n')
g3=$(tools/generate --load "$T/gen" --prompt "ab" --tokens 40 --temperature 1 --seed 1 2>/dev/null | head -c 42 | wc -c)
if [ -n "$g1" ] && [ "$g1" = "$g2" ] && [ "$g3" = 42 ]; then ok "generate_from_checkpoint (greedy is repeatable; 40 sampled bytes)"
else not_ok generate_from_checkpoint "greedy '$g1' vs '$g2', sampled bytes $g3"; fi
