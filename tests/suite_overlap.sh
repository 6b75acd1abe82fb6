#!/usr/bin/env bash
# suite_overlap.sh: communication overlap changes no bit. Each layout runs
# with small gradient buckets (--ddp-bucket-size 3000: a dozen buckets on
# the tiny model) without and with --overlap-grad-reduce (and, with the
# distributed optimizer, --overlap-param-gather): losses, gradient norms and
# final parameters must be identical bytes, the buckets must really have been
# posted during backward, and the communication formulas must still match
# the measured calls. Negative control: MT_INJECT_BUG=bucket-early posts a
# bucket one layer before its gradients are final; the bits must differ.
# The column-parallel backward's TP collectives, posted behind its GEMMs by
# default, against --no-async-tensor-model-parallel-allreduce; negative
# control tp-async-early reads the input gradient before its sum lands.
# --overlap-p2p-communication (pipeline receives posted early) likewise at
# PP 2 (1F1B, AFAB, interleaved), PP 2 x TP 2 + SP and, with every overlap
# flag, DP 2 x PP 2; negative control p2p-stale computes on the slot's stale
# input instead of the early receive's buffer.
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
BASE="$(tiny_model) --train-iters 4 --ddp-bucket-size 3000 --log-comm"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

# The bits that must not move: every iteration's loss and norm, and the parameters.
bits() { metrics_iters "$1.json" | sed -E 's/.*"lm_loss": ([^,]*), "grad_norm": ([^,]*),.*/\1 \2/'; md5sum < "$1.st"; }

# check NAME NP "LAYOUT FLAGS" "OVERLAP FLAGS"
check() {
  local name=$1 np=$2 layout=$3 ov=$4 a="$T/$1_off" b="$T/$1_on"
  mt_run "$a" "$np" ./pretrain_gpt $BASE $layout || { not_ok "$name" "run without overlap failed: $(tail -n 1 "$a.log")"; return; }
  mt_run "$b" "$np" ./pretrain_gpt $BASE $layout $ov || { not_ok "$name" "run with $ov failed: $(tail -n 1 "$b.log")"; return; }
  local early off_early mism
  early=$(sed -n 's/.* \([0-9]*\) posted during backward.*/\1/p' "$b.log" | sort -n | tail -n 1)
  off_early=$(sed -n 's/.* \([0-9]*\) posted during backward.*/\1/p' "$a.log" | sort -n | tail -n 1)
  mism=$(grep -c MISMATCH "$a.log" "$b.log" | awk -F: '{ s += $2 } END { print s + 0 }')
  if [ "$(bits "$a")" != "$(bits "$b")" ]; then not_ok "$name" "bits differ with $ov"
  elif [ "${early:-0}" -lt 1 ]; then
    not_ok "$name" "no bucket posted during backward with $ov"
  elif [ "${off_early:-0}" != 0 ]; then not_ok "$name" "buckets posted early without the flag ($off_early)"
  elif [ "$mism" != 0 ]; then not_ok "$name" "--log-comm: measured calls differ from the formulas"
  else ok "$name (identical bits; ${early:-0} buckets posted during backward)"; fi
}

check dp2 2 "" "--overlap-grad-reduce"
check dp2_distopt 2 "--use-distributed-optimizer" "--overlap-grad-reduce --overlap-param-gather"
check dp2_pp2_1f1b 4 "--pipeline-model-parallel-size 2" "--overlap-grad-reduce"
check dp2_pp2_interleaved 4 "--pipeline-model-parallel-size 2 --num-layers-per-virtual-pipeline-stage 1" "--overlap-grad-reduce"
check tp2_sp_dp2 4 "--tensor-model-parallel-size 2 --sequence-parallel" "--overlap-grad-reduce"

# check_p2p NAME NP "LAYOUT FLAGS": the same bits with and without early
# pipeline receives, --log-comm's formulas still matching (one receive
# counted per micro-batch and direction), and --log-pipeline's waits printed.
check_p2p() {
  local name=$1 np=$2 layout=$3 a="$T/$1_off" b="$T/$1_on"
  mt_run "$a" "$np" ./pretrain_gpt $BASE $layout --log-pipeline || { not_ok "$name" "run without the flag failed: $(tail -n 1 "$a.log")"; return; }
  mt_run "$b" "$np" ./pretrain_gpt $BASE $layout --log-pipeline --overlap-p2p-communication ||
    { not_ok "$name" "run with --overlap-p2p-communication failed: $(tail -n 1 "$b.log")"; return; }
  local mism w0 w1
  mism=$(grep -c MISMATCH "$a.log" "$b.log" | awk -F: '{ s += $2 } END { print s + 0 }')
  w0=$(awk '/waited/ { s += $4 } END { printf "%.1f", s }' "$a.log")
  w1=$(awk '/waited/ { s += $4 } END { printf "%.1f", s }' "$b.log")
  if [ "$(bits "$a")" != "$(bits "$b")" ]; then not_ok "$name" "bits differ with --overlap-p2p-communication"
  elif [ "$mism" != 0 ]; then not_ok "$name" "--log-comm: measured calls differ from the formulas"
  elif [ "$w1" = 0.0 ] && [ "$w0" = 0.0 ]; then not_ok "$name" "--log-pipeline printed no waits"
  else ok "$name (identical bits; pipeline waits summed over ranks and iterations: $w0 ms without, $w1 ms with)"; fi
}
check_p2p p2p_pp2_1f1b 2 "--pipeline-model-parallel-size 2"
check_p2p p2p_pp2_afab 2 "--pipeline-model-parallel-size 2 --pipeline-schedule afab"
check_p2p p2p_pp2_interleaved 2 "--pipeline-model-parallel-size 2 --num-layers-per-virtual-pipeline-stage 1"
check_p2p p2p_pp2_tp2_sp 4 "--pipeline-model-parallel-size 2 --tensor-model-parallel-size 2 --sequence-parallel"
# Every overlap flag at once against DP 2 x PP 2's run without any.
a="$T/dp2_pp2_1f1b_off" b="$T/p2p_all_on"
mt_run "$b" 4 ./pretrain_gpt $BASE --pipeline-model-parallel-size 2 --overlap-grad-reduce --overlap-p2p-communication
[ -f "$a.st" ] && [ -f "$b.st" ] && [ "$(bits "$a")" = "$(bits "$b")" ] && ok "p2p_dp2_pp2_all_overlap (identical bits)" ||
  not_ok p2p_dp2_pp2_all_overlap "bits differ with --overlap-grad-reduce --overlap-p2p-communication: $(tail -n 1 "$b.log")"
# Negative control: the early receive's data never reaches the slot.
a="$T/p2p_pp2_1f1b_off" b="$T/p2p_bug"
MT_INJECT_BUG=p2p-stale mt_run "$b" 2 ./pretrain_gpt $BASE --pipeline-model-parallel-size 2 --overlap-p2p-communication
[ -f "$a.st" ] && [ -f "$b.st" ] && [ "$(bits "$a")" != "$(bits "$b")" ] && ok "negative_control_p2p_stale (bits differ)" ||
  not_ok negative_control_p2p_stale "the planted stale input went unnoticed"

# Negative control: a bucket posted before its last layer's backward.
a="$T/dp2_off" b="$T/bug_on"
MT_INJECT_BUG=bucket-early mt_run "$b" 2 ./pretrain_gpt $BASE --overlap-grad-reduce
[ -f "$a.st" ] && [ -f "$b.st" ] && [ "$(bits "$a")" != "$(bits "$b")" ] && ok "negative_control_bucket_early (bits differ)" ||
  not_ok negative_control_bucket_early "the planted early post went unnoticed"

# The column-parallel backward's TP collectives behind its GEMMs (Megatron's
# default; --no-async-tensor-model-parallel-allreduce waits at once): the
# same bits, the same counted calls, and --log-comm's line saying how many
# were posted. TP 2 and TP 4, with and without SP (TP 4: sums of four
# partials, where an order change would show), and with DP and PP.
# check_tp NAME NP "LAYOUT FLAGS"
check_tp() {
  local name=$1 np=$2 layout=$3 a="$T/$1_sync" b="$T/$1_async"
  mt_run "$a" "$np" ./pretrain_gpt $BASE $layout --no-async-tensor-model-parallel-allreduce ||
    { not_ok "$name" "run without the overlap failed: $(tail -n 1 "$a.log")"; return; }
  mt_run "$b" "$np" ./pretrain_gpt $BASE $layout || { not_ok "$name" "run with the overlap failed: $(tail -n 1 "$b.log")"; return; }
  local mism posts
  mism=$(grep -c MISMATCH "$a.log" "$b.log" | awk -F: '{ s += $2 } END { print s + 0 }')
  posts=$(sed -n 's/^tp overlap rank [0-9]*: \([0-9]*\) collectives.*/\1/p' "$b.log" | sort -n | head -n 1)
  if [ "$(bits "$a")" != "$(bits "$b")" ]; then not_ok "$name" "bits differ with the TP overlap"
  elif [ "$mism" != 0 ]; then not_ok "$name" "--log-comm: measured calls differ from the formulas"
  elif [ "${posts:-0}" -lt 1 ]; then not_ok "$name" "no 'tp overlap' line with collectives posted behind a GEMM"
  elif grep -q '^tp overlap' "$a.log"; then not_ok "$name" "a 'tp overlap' line without the overlap"
  else ok "$name (identical bits; $posts collectives posted behind a GEMM on the quietest rank)"; fi
}
check_tp tp2 2 "--tensor-model-parallel-size 2"
check_tp tp2_sp 2 "--tensor-model-parallel-size 2 --sequence-parallel"
check_tp tp4 4 "--tensor-model-parallel-size 4"
check_tp tp4_sp 4 "--tensor-model-parallel-size 4 --sequence-parallel"
check_tp tp2_sp_dp2_pp2 8 "--tensor-model-parallel-size 2 --sequence-parallel --pipeline-model-parallel-size 2 --overlap-grad-reduce"
# Negative control: the input gradient read before its sum landed.
a="$T/tp2_sp_async" b="$T/tp_bug"
MT_INJECT_BUG=tp-async-early mt_run "$b" 2 ./pretrain_gpt $BASE --tensor-model-parallel-size 2 --sequence-parallel
[ -f "$a.st" ] && [ -f "$b.st" ] && [ "$(bits "$a")" != "$(bits "$b")" ] && ok "negative_control_tp_async_early (bits differ)" ||
  not_ok negative_control_tp_async_early "the planted early read went unnoticed"

# --overlap-param-gather without the distributed optimizer: one line, exit 2.
out=$($MPIRUN 2 ./pretrain_gpt $BASE --overlap-param-gather 2>&1 >/dev/null); rc=$?
[ $rc = 2 ] && echo "$out" | grep -q 'needs --use-distributed-optimizer' && ok "param_gather_needs_distopt" ||
  not_ok param_gather_needs_distopt "exit $rc: $out"

# The timeline of DP 2 x PP 2 with overlap: on every rank's lane, gradient
# reductions (comm, group dp) start before that rank's last backward ends,
# and --log-comm prints each rank's exposed fraction.
tl="$T/timeline"
timeout 300 $MPIRUN 4 ./pretrain_gpt $BASE --pipeline-model-parallel-size 2 --overlap-grad-reduce --timeline "$tl.svg" > "$tl.log" 2>&1
out=$(/usr/bin/python3 - "$tl.json" <<'PY' 2>&1
import json, sys
ev = json.load(open(sys.argv[1]))["traceEvents"]
lanes = []
for tid in range(4):
    bw = [e for e in ev if e.get("tid") == tid and e.get("cat") == "backward"]
    dp = [e for e in ev if e.get("tid") == tid and e.get("cat") == "comm" and e["args"].get("group") == "dp"]
    assert bw and dp, ("rank", tid, "has no backward or no dp reduction")
    end = max(e["ts"] + e["dur"] for e in bw)
    early = sum(e["ts"] < end for e in dp)
    assert early >= 1, ("rank", tid, "no dp reduction during backward")
    lanes.append("%d/%d" % (early, len(dp)))
print("reductions started during backward per rank: " + " ".join(lanes))
PY
)
fr=$(grep -c 'exposed fraction [0-9.]*$' "$tl.log")
[ "$fr" -ge 4 ] && [[ $out == reductions* ]] && ok "timeline_dp2_pp2_overlap ($out)" ||
  not_ok timeline_dp2_pp2_overlap "exposed-fraction lines $fr; $out $(tail -n 1 "$tl.log")"
