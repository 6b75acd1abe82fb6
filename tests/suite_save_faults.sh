#!/usr/bin/env bash
# tests/suite_save_faults.sh: a save stopped at any of its steps, a full
# disk, hostile entries in --save and non-finite weights never lose the
# previous checkpoint, never touch a file the user did not name as output,
# never hang, and end with one line (docs/bad-input.md, "Faults during a save").
#
# Faults come from build/fault_shim.so (tests/fault_shim.c, LD_PRELOAD): the
# Nth mkdir / create / rename / unlink / fsync / write under --save fails or
# is a SIGKILL. A counting run first finds how many of each a save makes, so
# the cases follow the save's real steps: every step for a fresh save of an
# iteration and for a re-save of one that exists (a rerun). Each case then
#   - ends in time (a timeout is a failure) with exit 0 or 1 (137 killed),
#     a failure with exactly one line on stderr;
#   - leaves a checkpoint that loads: a --load run (which also saves, and so
#     must clear any temporary the crash left) succeeds, and the files of the
#     iteration it loaded equal byte for byte the old checkpoint's or the new
#     one's (reference runs without faults);
#   - leaves every canary byte for byte as it was: files beside --save's
#     entries, in the parent directory, behind symlinks that point out of
#     --save (iter_N -> ../outside), and user files named like old-style
#     temporaries (iter_N.tmp, latest_checkpointed_iteration.txt.tmp);
#   - leaves no temporary or .old entry in --save after the next save.
#
#   bash tests/suite_save_faults.sh               run the checks
#   bash tests/suite_save_faults.sh --doc FILE    also write the cases as the
#       section after the line "<!-- save-faults -->" of FILE (what comes
#       before the marker is suite_bad_input.sh's and stays as it is)
#   MT_SAVE_FAULTS_BIN=path  the trainer to test (default ./pretrain_gpt)
#   MT_SAVE_FAULTS_ONLY_CHECKS=1  skip the per-step save cases (a quick rerun)
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
[ -n "${T:-}" ] && [ -d "$T" ] || { echo "not ok save_faults_setup: no scratch directory"; exit 1; }
doc=""
[ "${1:-}" = --doc ] && doc=$2
SHIM=$PWD/build/fault_shim.so
MPIRUN=$PWD/$MPIRUN  # cases run from their own directory
[ -f "$SHIM" ] || { not_ok save_faults_setup "no $SHIM (make all)"; exit 1; }
# A private copy (a rebuild mid-suite must not change it); the shim acts only
# in processes named pretrain_gpt*.
cp "${MT_SAVE_FAULTS_BIN:-./pretrain_gpt}" "$T/pretrain_gpt" || { not_ok save_faults_setup "no trainer"; exit 1; }
BIN=$T/pretrain_gpt
JOBS=${MT_SAVE_FAULTS_JOBS:-3}
export OMPI_MCA_ess_singleton_isolated=${OMPI_MCA_ess_singleton_isolated:-1}
# shellcheck disable=SC2207
M=($(tiny_model))
LATEST=latest_checkpointed_iteration.txt
rm -rf "$T/cases" "$T/ref" "$T/alt" "$T/new"; mkdir -p "$T/cases"

# ---- references: the old and the new checkpoint each case may leave ----------
# ref: iterations 1-3 of the tiny model; alt: iteration 2 of another run
# (--lr 2e-3), the "old" iter_2 that a re-save replaces.
"$BIN" "${M[@]}" --train-iters 3 --save-interval 1 --save "$T/ref" > "$T/ref.log" 2>&1 &&
  "$BIN" "${M[@]}" --train-iters 2 --save-interval 1 --lr 2e-3 --save "$T/alt" > "$T/alt.log" 2>&1 &&
  ! cmp -s "$T/ref/iter_0000002/model.safetensors" "$T/alt/iter_0000002/model.safetensors" ||
  { not_ok save_faults_setup "reference runs: $(tail -n 1 "$T/ref.log" "$T/alt.log" | tr '\n' ' ')"; exit 1; }

# The new checkpoint of a multi-rank save: the same save without a fault on
# NP ranks (data-parallel sums differ from one rank's in the last bits).
# new/NP_fresh/iter_3 and new/NP_resave/iter_2; one rank: ref's.
new_ckpt() {  # new_ckpt NP KIND
  if [ "$1" = 1 ]; then echo "$T/ref/iter_000000$([ "$2" = fresh ] && echo 3 || echo 2)"; return; fi
  local D=$T/new/$1_$2
  if [ ! -d "$D" ]; then
    mkdir -p "$D/save" "$D/load"
    cp -a "$T/ref/iter_0000001" "$D/load/"
    if [ "$2" = fresh ]; then cp -a "$T/ref/iter_0000002" "$D/load/"; echo 2 > "$D/load/$LATEST"
    else echo 1 > "$D/load/$LATEST"; fi
    ( cd "$D" && timeout 60 $MPIRUN "$1" "$BIN" "${M[@]}" --train-iters "$([ "$2" = fresh ] && echo 3 || echo 2)" \
        --load "$D/load" --save "$D/save" > "$D/log" 2>&1 < /dev/null )
  fi
  echo "$D/save/iter_000000$([ "$2" = fresh ] && echo 3 || echo 2)"
}

# fixture KIND W: W/save as the case starts, W/load1 (re-saves load from
# iteration 1), the canaries, and their pristine copies in W/.pristine.
fixture() {
  local kind=$1 W=$2 f
  mkdir -p "$W/save" "$W/outside/deep" "$W/save/iter_0000003.tmp" "$W/save/iter_0000002.tmp"
  cp -a "$T/ref/iter_0000001" "$W/save/"
  if [ "$kind" = fresh ]; then cp -a "$T/ref/iter_0000002" "$W/save/"
  else
    cp -a "$T/alt/iter_0000002" "$W/save/"
    mkdir -p "$W/load1"; cp -a "$T/ref/iter_0000001" "$W/load1/"; echo 1 > "$W/load1/$LATEST"
  fi
  echo 2 > "$W/save/$LATEST"
  echo "parent canary" > "$W/canary.txt"
  echo "user notes beside the checkpoints" > "$W/save/notes.txt"
  echo "a user's file with the old temporary's name" > "$W/save/$LATEST.tmp"
  echo "user dir named like an old temporary" > "$W/save/iter_0000003.tmp/keep.txt"
  echo "user dir named like an old temporary" > "$W/save/iter_0000002.tmp/keep.txt"
  echo "outside --save" > "$W/outside/a.txt"
  echo "outside, one level down" > "$W/outside/deep/b.txt"
  cp "$T/ref/iter_0000001/model.safetensors" "$W/outside/model.safetensors"
  ln -s ../outside "$W/save/iter_0000009"  # a link out of --save, never saved to
  mkdir -p "$W/.pristine"
  for f in canary.txt save/notes.txt "save/$LATEST.tmp" save/iter_0000003.tmp/keep.txt save/iter_0000002.tmp/keep.txt \
           outside/a.txt outside/deep/b.txt outside/model.safetensors; do
    mkdir -p "$W/.pristine/$(dirname "$f")"; cp -a "$W/$f" "$W/.pristine/$f"
  done
}

# canaries_ok W: every canary byte for byte, the link still a link, nothing
# new outside --save. Prints what differs.
canaries_ok() {
  local W=$1 f bad=""
  while IFS= read -r f; do
    f=${f#"$W/.pristine/"}
    cmp -s "$W/.pristine/$f" "$W/$f" || bad="$bad $f"
  done < <(find "$W/.pristine" -type f)
  [ "$(readlink "$W/save/iter_0000009")" = ../outside ] || bad="$bad save/iter_0000009(link)"
  local extra
  extra=$(cd "$W" && find . -path ./save -prune -o -path ./.pristine -prune -o -path ./load1 -prune -o -path ./run -prune \
            -o -print | grep -vxE '\.|\./canary\.txt|\./outside(/deep)?|\./outside/(a\.txt|deep/b\.txt|model\.safetensors)|\./[a-z0-9_.]+\.(out|err|vout|verr)' | tr '\n' ' ')
  [ -n "$extra" ] && bad="$bad new:$extra"
  [ -z "$bad" ] || { echo "canaries changed:$bad"; return 1; }
}

# same_ckpt A B: the two checkpoint directories hold the same tensors.
same_ckpt() { cmp -s "$1/model.safetensors" "$2/model.safetensors" && cmp -s "$1/optimizer.safetensors" "$2/optimizer.safetensors"; }

# run_np NP ARGS...: the trainer on NP ranks (1: a singleton, no mpirun),
# under a timeout (a hang is a failed case).
run_np() {
  local np=$1; shift
  if [ "$np" = 1 ]; then timeout --kill-after=5 40 "$BIN" "$@"
  else timeout --kill-after=5 40 $MPIRUN "$np" "$BIN" "$@"; fi
}

# one_line FILE: stderr less notes and warnings (and, for a SIGKILL, mpirun's
# report of it) as one line; prints the count.
err_lines() { grep -vE '^(note|warning):|^-{20,}|mpirun noticed that process|^$' "$1" | wc -l; }

# save_case NAME KIND NP RANK OPS N ACTION ERRNO [NX]: a save (fresh: iteration 3
# into --save holding 1-2; resave: iteration 2, loaded from 1, over --save's
# older iteration 2) on NP ranks, with the shim's fault on RANK; NX=nx: on a
# file system without RENAME_EXCHANGE (the re-save's NAME.old fallback).
# Result line in $T/cases/NAME.res; the doc row in NAME.row.
save_case() {
  local name=$1 kind=$2 np=$3 rank=$4 ops=$5 n=$6 action=$7 errno_=$8 nx=${9:-}
  local W=$T/cases/$name rc secs lines why="" k new
  new=$(new_ckpt "$np" "$kind")
  rm -rf "$W"; mkdir -p "$W"; fixture "$kind" "$W"
  local args=("${M[@]}" --save "$W/save")
  if [ "$kind" = fresh ]; then args+=(--train-iters 3 --load "$W/save"); else args+=(--train-iters 2 --load "$W/load1"); fi
  local t0; t0=$(date +%s.%N)
  ( cd "$W" && export LD_PRELOAD=$SHIM MT_FAULT_OPS=$ops MT_FAULT_N=$n MT_FAULT_ACTION=$action MT_FAULT_ERRNO=$errno_ \
      MT_FAULT_DIR=$W/save MT_FAULT_RANK=$rank OMPI_MCA_orte_tmpdir_base=$W/run MT_FAULT_NO_EXCHANGE=$([ "$nx" = nx ] && echo 1) &&
    run_np "$np" "${args[@]}" > "$W/fault.out" 2> "$W/fault.err" < /dev/null )
  rc=$?
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  lines=$(err_lines "$W/fault.err")
  if [ "$rc" = 124 ] || [ "$rc" = 137 -a "$action" != kill ] || awk -v s="$secs" 'BEGIN { exit !(s >= 30) }'; then
    why="hung or timed out (exit $rc after ${secs}s)"
  elif [ "$action" = kill ] && { [ "$rc" = 0 ] || [ "$rc" -ge 124 -a "$rc" -le 127 ]; }; then
    why="exit $rc although a rank was killed"
  elif [ "$action" != kill ] && [ "$rc" != 0 ] && [ "$rc" != 1 ]; then why="exit $rc (want 0, or 1 with one line)"
  elif [ "$rc" = 1 ] && [ "$lines" != 1 ]; then why="exit 1 with $lines lines on stderr: $(head -c 300 "$W/fault.err" | tr '\n' '|')"
  fi
  # The checkpoint that a --load finds, and a next save (which clears the
  # crash's leftovers).
  if [ -z "$why" ]; then
    ( cd "$W" && OMPI_MCA_orte_tmpdir_base=$W/run timeout --kill-after=5 40 "$BIN" "${M[@]}" --train-iters 4 \
        --load "$W/save" --save "$W/save" > "$W/verify.vout" 2> "$W/verify.verr" < /dev/null )
    k=$(sed -n 's/^loaded checkpoint from .* at iteration \([0-9]*\) .*/\1/p' "$W/verify.vout")
    local got=$W/save/iter_000000$k
    [ -d "$got" ] || got=$got.old
    if [ -z "$k" ]; then why="the checkpoint left does not load: $(head -c 300 "$W/verify.verr" | tr '\n' '|')"
    elif [ "$kind" = fresh ] && ! { [ "$k" = 2 ] && same_ckpt "$got" "$T/ref/iter_0000002"; } &&
         ! { [ "$k" = 3 ] && same_ckpt "$got" "$new"; }; then why="loaded iteration $k, equal to neither the old nor the new"
    elif [ "$kind" = resave ] && ! { [ "$k" = 2 ] && { same_ckpt "$got" "$T/alt/iter_0000002" || same_ckpt "$got" "$new"; }; }; then
      why="loaded iteration $k, equal to neither the old iter_2 nor the new"
    elif [ "$rc" = 0 ] && [ "$action" != kill ] && [ "$k" != "$([ "$kind" = fresh ] && echo 3 || echo 2)" ]; then
      why="exit 0 but the new checkpoint is not the one loaded (iteration $k)"
    elif [ "$rc" = 0 ] && [ "$kind" = resave ] && ! same_ckpt "$got" "$new"; then
      why="exit 0 but iter_2 is still the old one"
    elif ! grep -q "saved checkpoint at iteration 4" "$W/verify.vout"; then why="the next save failed: $(head -c 200 "$W/verify.verr")"
    else
      local stray
      stray=$(cd "$W/save" && ls -A | grep -vxE "iter_000000[1-4]|$LATEST|notes\.txt|$LATEST\.tmp|iter_000000[23]\.tmp|iter_0000009" | tr '\n' ' ')
      [ -n "$stray" ] && why="after the next save, --save still holds: $stray"
    fi
  fi
  [ -z "$why" ] && { why=$(canaries_ok "$W") && why=""; }
  local first; first=$(grep -vE '^(note|warning):|^-{20,}|^$|Killed|mpirun noticed' "$W/fault.err" | head -n 1)
  [ "$action" = kill ] && [ -z "$first" ] && first="(killed: no line)"
  if [ -z "$why" ]; then echo "ok save_faults/$name (exit $rc after ${secs}s; loads iteration $k)" > "$W.res"
  else echo "not ok save_faults/$name: $why" > "$W.res"; fi
  printf '%s\037%s\037%s\037%s\037%s\n' "$name" "$kind${nx:+ (no RENAME_EXCHANGE)}, $np rank(s): $action $ops #$n${rank:+ on rank $rank}${errno_:+ ($errno_)}" \
    "${first//$T\//}" "$rc" "$k" > "$W.row"
}

# count KIND: how many calls of each kind a fault-free save of KIND makes on
# rank 0, into steps[KIND.OP].
declare -A steps
count() {  # count KIND [nx]: steps into steps[KIND.OP], or steps[KIND_nx.OP]
  local W=$T/cases/count_$1${2:-} line key=$1${2:+_$2}
  rm -rf "$W"; mkdir -p "$W"; fixture "$1" "$W"
  local args=("${M[@]}" --save "$W/save")
  if [ "$1" = fresh ]; then args+=(--train-iters 3 --load "$W/save"); else args+=(--train-iters 2 --load "$W/load1"); fi
  ( cd "$W" && LD_PRELOAD=$SHIM MT_FAULT_OPS=mkdir,creat,rename,unlink,fsync,write MT_FAULT_N=0 MT_FAULT_DIR=$W/save \
      MT_FAULT_RANK=0 MT_FAULT_COUNT=$W/count MT_FAULT_NO_EXCHANGE=$([ "${2:-}" = nx ] && echo 1) timeout 40 "$BIN" "${args[@]}" > /dev/null 2>&1 < /dev/null )
  read -r -a line < <(grep '^rank 0 ' "$W/count" 2> /dev/null)
  for ((i = 4; i + 1 < ${#line[@]}; i += 2)); do steps[$key.${line[i]}]=${line[i + 1]}; done
}

names=()
queue() {
  [ -n "${MT_SAVE_FAULTS_ONLY_CHECKS:-}" ] && return
  names+=("$1")
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done
  save_case "$@" &
}

# ---- 1 rank: every step of both kinds of save ----------------------------------
# The steps that change what --save holds are its mkdirs, renames and
# unlinks: a SIGKILL and a failure before each of them. File creation,
# writes and fsyncs only touch the temporaries: the first and last of each.
count fresh; count resave
for kind in fresh resave; do
  for ops in mkdir rename unlink; do
    for ((n = 1; n <= ${steps[$kind.$ops]:-0}; n++)); do
      queue "${kind}_kill_${ops}_$n" "$kind" 1 0 "$ops" "$n" kill ""
      queue "${kind}_fail_${ops}_$n" "$kind" 1 0 "$ops" "$n" fail EIO
    done
  done
  w=${steps[$kind.write]:-1} f=${steps[$kind.fsync]:-1} c=${steps[$kind.creat]:-1}
  queue "${kind}_fail_creat_1" "$kind" 1 0 creat 1 fail EIO
  queue "${kind}_kill_creat_$c" "$kind" 1 0 creat "$c" kill ""
  queue "${kind}_fail_fsync_1" "$kind" 1 0 fsync 1 fail EIO
  queue "${kind}_kill_fsync_$f" "$kind" 1 0 fsync "$f" kill ""
  queue "${kind}_fail_fsync_$f" "$kind" 1 0 fsync "$f" fail EIO
  queue "${kind}_enospc_write_1" "$kind" 1 0 write 1 fail ENOSPC
  queue "${kind}_enospc_write_$w" "$kind" 1 0 write "$w" fail ENOSPC
  queue "${kind}_kill_write_$((w / 2))" "$kind" 1 0 write $((w / 2)) kill ""
  # Control: no fault (the save succeeds, a re-save replaces the old iter_2).
  queue "${kind}_no_fault" "$kind" 1 0 none 0 fail ""
done
# A file system without RENAME_EXCHANGE: the re-save moves the old iter_2
# aside to iter_2.old, moves the new one in, removes the old. A kill and a
# failure before each of those renames and unlinks; a --load must find the
# old or the new iter_2 (iter_2.old while iter_2 is missing).
count resave nx
[ "${steps[resave_nx.rename]:-0}" -gt "${steps[resave.rename]:-0}" ] ||
  not_ok save_faults/no_exchange_takes_the_fallback "renames without exchange ${steps[resave_nx.rename]:-?}, with ${steps[resave.rename]:-?}: the shim's switch did not reach the save"
for ops in rename unlink; do
  for ((n = 1; n <= ${steps[resave_nx.$ops]:-0}; n++)); do
    queue "resave_nx_kill_${ops}_$n" resave 1 0 "$ops" "$n" kill "" nx
    queue "resave_nx_fail_${ops}_$n" resave 1 0 "$ops" "$n" fail EIO nx
  done
done
queue resave_nx_no_fault resave 1 0 none 0 fail "" nx

# ---- 2 and 4 ranks: the fault on one rank only -----------------------------------
wait  # the references first (built once, not by concurrent cases)
for np in 2 4; do for kind in fresh resave; do new_ckpt "$np" "$kind" > /dev/null; done; done
# Rank 0 writes every file; the others wait in the broadcast of its verdict.
for np in 2 4; do
  queue "np${np}_resave_kill_install_on_rank0" resave "$np" 0 rename "$((${steps[resave.rename]:-4} - 1))" kill ""
  queue "np${np}_fresh_enospc_write_on_rank0" fresh "$np" 0 write "$((${steps[fresh.write]:-2} / 2))" fail ENOSPC
  queue "np${np}_resave_fail_rename_on_rank0" resave "$np" 0 rename 1 fail EIO
  # A fault armed on the last rank, which writes nothing: the save succeeds.
  queue "np${np}_fresh_fault_on_rank$((np - 1))_only" fresh "$np" $((np - 1)) rename 1 fail EIO
done
wait

# ---- single checks: non-finite weights, corrupt optimizer state, full disk,
# outputs behind symlinks, one rank's failure ending the job ----------------------
# check NAME RC WANT KEEP... -- CMD...: CMD (from $T/one/NAME) ends with exit
# RC in under 30 s, stderr (less notes/warnings) is one line matching the
# extended regex WANT, and every KEEP file is byte for byte what it was.
check() {
  local name=$1 want_rc=$2 want=$3; shift 3
  local keep=() why="" rc secs lines
  while [ "$1" != -- ]; do keep+=("$1"); shift; done; shift
  mkdir -p "$T/one/$name.keep"
  local i=0 f; for f in "${keep[@]}"; do cp -a "$f" "$T/one/$name.keep/$i"; i=$((i + 1)); done
  local t0; t0=$(date +%s.%N)
  ( cd "$T/one" && OMPI_MCA_orte_tmpdir_base=$T/one/$name.run timeout --kill-after=5 40 "$@" > "$T/one/$name.out" 2> "$T/one/$name.err" < /dev/null )
  rc=$?
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  lines=$(err_lines "$T/one/$name.err")
  local line; line=$(grep -vE '^(note|warning):|^-{20,}|^$' "$T/one/$name.err" | head -n 1)
  if [ "$rc" != "$want_rc" ]; then why="exit $rc (want $want_rc) after ${secs}s: $(head -c 300 "$T/one/$name.err" | tr '\n' '|')"
  elif awk -v s="$secs" 'BEGIN { exit !(s >= 30) }'; then why="took ${secs}s"
  elif [ "$want_rc" != 0 ] && { [ "$lines" != 1 ] || ! grep -qE -- "$want" <<< "$line"; }; then
    why="$lines lines, want one matching '$want': $(head -c 300 "$T/one/$name.err" | tr '\n' '|')"
  fi
  i=0; for f in "${keep[@]}"; do
    [ -z "$why" ] && ! cmp -s "$T/one/$name.keep/$i" "$f" && why="$f changed"
    i=$((i + 1))
  done
  if [ -z "$why" ]; then ok "save_faults/$name (exit $rc after ${secs}s)"; else not_ok "save_faults/$name" "$why"; fi
  printf '%s\037%s\037%s\037%s\037\n' "$name" "$*" "${line//$T\//}" "$rc" > "$T/one/$name.row"
  one_names+=("$name")
}
one_names=()
rm -rf "$T/one"; mkdir -p "$T/one/out" "$T/one/outside"
O=$T/one
echo "old export" > "$O/out/model.bin"; echo "old dump" > "$O/out/params.st"; mkdir -p "$O/out/hf"
echo "old config" > "$O/out/hf/config.json"; echo "old hf" > "$O/out/hf/model.safetensors"
echo "outside target" > "$O/outside/target"; ln -s ../outside/target "$O/out/link.bin"
echo "decoy" > "$O/out/.model.bin.tmp"; echo "decoy" > "$O/out/model.bin.old"
# An update that overflows: lr * weight decay * w is past fp32's range.
HUGE=(--lr 3e38 --weight-decay 10 --lr-warmup-iters 0 --lr-decay-style constant)

# Class 3: weights that turned non-finite in the last update are never written.
check nonfinite_export_llmc 1 "model.bin: tensor .* non-finite|not a finite" "$O/out/model.bin" "$O/out/.model.bin.tmp" -- \
  "$BIN" "${M[@]}" "${HUGE[@]}" --train-iters 1 --export-llmc "$O/out/model.bin"
check nonfinite_export_hf 1 "tensor .* non-finite" "$O/out/hf/config.json" "$O/out/hf/model.safetensors" -- \
  "$BIN" "${M[@]}" "${HUGE[@]}" --train-iters 1 --export-hf "$O/out/hf"
check nonfinite_dump_params 1 "tensor .* non-finite" "$O/out/params.st" -- \
  "$BIN" "${M[@]}" "${HUGE[@]}" --train-iters 1 --dump-params "$O/out/params.st"
mkdir -p "$O/nf"; cp -a "$T/ref/iter_0000001" "$O/nf/"; echo 1 > "$O/nf/$LATEST"
check nonfinite_checkpoint 1 "saving the checkpoint of iteration 2 failed: tensor .* non-finite" \
  "$O/nf/$LATEST" "$O/nf/iter_0000001/model.safetensors" -- "$BIN" "${M[@]}" "${HUGE[@]}" \
  --train-iters 2 --load "$O/nf" --save "$O/nf"
[ -z "$(ls -A "$O/nf" | grep -vxE "iter_0000001|$LATEST")" ] || not_ok save_faults/nonfinite_checkpoint_leaves_nothing "$(ls -A "$O/nf")"

# Class 3: a checkpoint whose optimizer state or weights cannot be loaded
# faithfully is refused with exit 2 naming the file and the tensor.
# patch FILE TENSOR INDEX VALUE: one element of a safetensors file (F32/F64).
patch() {
  /usr/bin/python3 - "$@" << 'PY'
import json, struct, sys
path, name, idx, val = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
b = bytearray(open(path, 'rb').read())
n = struct.unpack('<Q', b[:8])[0]
t = json.loads(b[8:8 + n])[name]
fmt, size = ('<f', 4) if t['dtype'] == 'F32' else ('<d', 8)
off = 8 + n + t['data_offsets'][0] + idx * size
b[off:off + size] = struct.pack(fmt, val)
open(path, 'wb').write(b)
PY
}
corrupt() {  # corrupt DIR FILE TENSOR VALUE [SRC]: a copy of SRC (ref's iter 2) with one value changed
  mkdir -p "$O/$1"; cp -a "${5:-$T/ref/iter_0000002}" "$O/$1/iter_0000002"; echo 2 > "$O/$1/$LATEST"
  patch "$O/$1/iter_0000002/$2" "$3" 3 "$4"
}
corrupt negv optimizer.safetensors h.0.attn.qkv.weight.exp_avg_sq -1e-3
check load_negative_second_moment 2 "optimizer.safetensors: tensor h.0.attn.qkv.weight.exp_avg_sq holds a negative AdamW second moment" -- \
  "$BIN" "${M[@]}" --train-iters 3 --load "$O/negv"
corrupt nanm optimizer.safetensors wte.weight.exp_avg nan
check load_nan_first_moment 2 "optimizer.safetensors: tensor wte.weight.exp_avg holds a non-finite value" -- \
  "$BIN" "${M[@]}" --train-iters 3 --load "$O/nanm"
if [ -x ./pretrain_gpt_fp64 ] && "$PWD/pretrain_gpt_fp64" "${M[@]}" --train-iters 2 --save "$O/f64ref" > "$O/f64.log" 2>&1; then
  corrupt f64 model.safetensors wpe.weight 1e300 "$O/f64ref/iter_0000002"
  check load_fp64_value_overflowing_fp32 2 "model.safetensors: tensor wpe.weight holds a value that overflows this build's fp32" -- \
    "$BIN" "${M[@]}" --train-iters 3 --load "$O/f64"
  check load_fp64_checkpoint_into_fp32_control 0 "" -- "$BIN" "${M[@]}" --train-iters 3 --load "$O/f64ref"
else not_ok save_faults/fp64_reference "no ./pretrain_gpt_fp64 run: $(tail -n 1 "$O/f64.log" 2>/dev/null)"; fi

# Symlinks: an output that is a link is replaced, what it points to never
# written; decoys beside an output (.NAME.tmp, NAME.old) stay.
check export_over_symlink_keeps_target 0 "" "$O/outside/target" "$O/out/.model.bin.tmp" "$O/out/model.bin.old" -- \
  "$BIN" "${M[@]}" --train-iters 1 --export-llmc "$O/out/link.bin"
[ -f "$O/out/link.bin" ] && [ ! -L "$O/out/link.bin" ] && [ -s "$O/out/link.bin" ] ||
  not_ok save_faults/export_over_symlink_writes_the_named_path "link.bin: $(ls -l "$O/out/link.bin")"

# A model file replaced between the header check that sized the model and the
# load (a swap, not a fault: the shim renames a stand-in onto the path at its
# second read-only open, the first being the header check). Refused with one
# line, never read with the old shapes, never waited on (a FIFO).
mkdir -p "$O/swap"
"$BIN" "${M[@]}" --train-iters 0 --export-llmc "$O/swap/a.bin" > /dev/null 2>&1 &&
  "$BIN" "${M[@]}" --num-layers 2 --train-iters 0 --export-llmc "$O/swap/b.bin" > /dev/null 2>&1 ||
  not_ok save_faults/swap_fixtures "cannot export the two model files"
swap_case() {  # NAME STAND_IN_KIND PATTERN
  local d=$O/swap/$1; rm -rf "$d"; mkdir -p "$d"; cp "$O/swap/a.bin" "$d/model.bin"
  if [ "$2" = fifo ]; then mkfifo "$d/stand_in"; else cp "$O/swap/b.bin" "$d/stand_in"; fi
  check "$1" 2 "$3" -- env LD_PRELOAD="$SHIM" MT_FAULT_OPS=ropen MT_FAULT_DIR="$d" MT_FAULT_N=2 MT_FAULT_ACTION=swap \
    MT_FAULT_SWAP="$d/stand_in" "$BIN" "${M[@]}" --init-from "$d/model.bin" --train-iters 1
  [ -e "$d/stand_in" ] && not_ok "save_faults/$1_swap_happened" "the shim did not rename the stand-in (the load opened the file once?)"
}
swap_case init_from_replaced_by_other_model_after_header_check file "changed since its header was read \(now layers 2"
swap_case init_from_replaced_by_fifo_after_header_check fifo "not a regular file"

# Class 13: a failure on one rank ends a 4-rank job promptly with one line.
c4=$( (cd "$O" && LD_PRELOAD=$SHIM MT_FAULT_OPS=malloc MT_FAULT_MIN=1024 MT_FAULT_N=0 MT_FAULT_RANK=3 MT_FAULT_COUNT=$O/m4 \
        timeout 60 $MPIRUN 4 "$BIN" "${M[@]}" --train-iters 3 > /dev/null 2>&1); sed -n 's/^rank 3 calls \([0-9]*\).*/\1/p' "$O/m4")
for n in 1 "${c4:-1}"; do
  check "np4_out_of_memory_on_rank3_alloc_$n" 1 "error: out of memory allocating" -- env LD_PRELOAD="$SHIM" MT_FAULT_OPS=malloc \
    MT_FAULT_MIN=1024 MT_FAULT_N="$n" MT_FAULT_RANK=3 $MPIRUN 4 "$BIN" "${M[@]}" --train-iters 3
done
check np1_out_of_memory_no_mpi_abort_banner 1 "^pretrain_gpt: error: out of memory allocating" -- env LD_PRELOAD="$SHIM" \
  MT_FAULT_OPS=malloc MT_FAULT_MIN=1024 MT_FAULT_N=3 "$BIN" "${M[@]}" --train-iters 3
grep -q MPI_ABORT "$O/np1_out_of_memory_no_mpi_abort_banner.err" && not_ok save_faults/np1_no_abort_banner "$(head -c 200 "$O/np1_out_of_memory_no_mpi_abort_banner.err")"
mkdir -p "$O/s4"; cp -a "$T/ref/iter_0000001" "$T/ref/iter_0000002" "$O/s4/"; echo 2 > "$O/s4/$LATEST"
check np4_enospc_on_rank0_checkpoint 1 "saving the checkpoint of iteration 3 failed: .*No space left" "$O/s4/$LATEST" \
  "$O/s4/iter_0000002/model.safetensors" -- env LD_PRELOAD="$SHIM" MT_FAULT_OPS=write MT_FAULT_N=5 MT_FAULT_ERRNO=ENOSPC \
  MT_FAULT_DIR="$O/s4" MT_FAULT_RANK=0 $MPIRUN 4 "$BIN" "${M[@]}" --train-iters 3 --load "$O/s4" --save "$O/s4"

# ---- a full disk: a small tmpfs (root only) ---------------------------------------
FS=$O/fs
if [ "$(id -u)" = 0 ] && mkdir -p "$FS" && mount -t tmpfs -o size=1200k tmpfs "$FS" 2> /dev/null; then
  trap 'umount "$FS" 2> /dev/null' EXIT
  mkdir -p "$FS/ck"; cp -a "$T/ref/iter_0000001" "$FS/ck/"; echo 1 > "$FS/ck/$LATEST"
  echo "old svg" > "$FS/t.svg"; echo "old json" > "$FS/t.json"; echo "old export" > "$FS/m.bin"; echo "old dump" > "$FS/p.st"
  echo "old config" > "$FS/ex.json"
  used0=$(du -sk "$FS/ck" | cut -f1)
  # A re-save of iteration 1 (the run starts over) does not fit beside the old one.
  check fullfs_resave_keeps_old 1 "saving the checkpoint of iteration 1 failed: .*No space left" "$FS/ck/$LATEST" \
    "$FS/ck/iter_0000001/model.safetensors" "$FS/ck/iter_0000001/optimizer.safetensors" -- "$BIN" "${M[@]}" --train-iters 1 --save "$FS/ck"
  [ "$(du -sk "$FS/ck" | cut -f1)" = "$used0" ] || not_ok save_faults/fullfs_resave_leaves_no_temporary "$(ls -A "$FS/ck")"
  check fullfs_load_after_failed_save 0 "" -- "$BIN" "${M[@]}" --train-iters 2 --load "$FS/ck"
  dd if=/dev/zero of="$FS/fill" bs=4k > /dev/null 2>&1  # the rest of the disk
  check fullfs_export_llmc 1 "m.bin: No space left" "$FS/m.bin" -- "$BIN" "${M[@]}" --train-iters 1 --export-llmc "$FS/m.bin"
  check fullfs_dump_params 1 "p.st: No space left" "$FS/p.st" -- "$BIN" "${M[@]}" --train-iters 1 --dump-params "$FS/p.st"
  check fullfs_timeline 1 "--timeline .*No space left" "$FS/t.svg" "$FS/t.json" -- "$BIN" "${M[@]}" --train-iters 1 --timeline "$FS/t.svg"
  check fullfs_metrics 1 "--metrics-file .*(write failed|No space left)" "$FS/ex.json" -- "$BIN" "${M[@]}" --train-iters 3 --metrics-file "$FS/mf.json"
  check np2_fullfs_metrics 1 "--metrics-file .*(write failed|No space left)" "$FS/ex.json" -- $MPIRUN 2 "$BIN" "${M[@]}" --train-iters 3 --metrics-file "$FS/mf2.json"
  umount "$FS"; trap - EXIT
else
  echo "# full-disk cases skipped: they mount a 1.2 MB tmpfs, which needs root (the shim's ENOSPC cases above still run)"
fi

for n in "${names[@]}"; do cat "$T/cases/$n.res"; done

# ---- docs/bad-input.md: this suite's section, after the marker -------------------
if [ -n "$doc" ]; then
  marker='<!-- save-faults -->'
  [ -f "$doc" ] || : > "$doc"
  grep -qxF "$marker" "$doc" || printf '\n%s\n' "$marker" >> "$doc"
  head="$(sed "/^$marker\$/q" "$doc")"
  {
    printf '%s\n\n' "$head"
    echo "## Faults during a save, a full disk, non-finite weights, one rank failing"
    echo
    echo "Generated by \`bash tests/suite_save_faults.sh --doc docs/bad-input.md\` (this"
    echo "section only: the lines above the marker are suite_bad_input.sh's). A fault"
    echo "comes from \`build/fault_shim.so\` (tests/fault_shim.c, \`LD_PRELOAD\`): the Nth"
    echo "mkdir, create, rename, unlink, fsync or write under \`--save\` fails with the"
    echo "errno shown or is a SIGKILL, counted from a fault-free save, so every step of"
    echo "a save is hit. *fresh* saves iteration 3 into a \`--save\` holding 1 and 2;"
    echo "*resave* saves iteration 2 over an older iteration 2 (a rerun). After each case"
    echo "a \`--load\` finds a checkpoint byte for byte equal to the old or the new one,"
    echo "the next save clears any temporary, and canaries (beside the outputs, in the"
    echo "parent directory, behind \`iter_9 -> ../outside\`, user files named"
    echo "\`iter_N.tmp\` and \`latest_checkpointed_iteration.txt.tmp\`) are unchanged."
    echo "Exit 1 always comes with one line; 137 is the SIGKILL itself. \`TINY\` is the"
    echo "tiny model of the table above, \`one/\` and \`cases/\` the suite's scratch directories."
    echo
    echo "| case | fault | what the user sees (stderr) | exit code | iteration loaded after |"
    echo "|---|---|---|---|---|"
    for n in "${names[@]}"; do
      IFS=$'\037' read -r c what line rc k < "$T/cases/$n.row"
      echo "| $c | $what | \`${line:-(none: saved)}\` | $rc | $k |"
    done
    echo
    echo "| case | command | what the user sees (stderr) | exit code |"
    echo "|---|---|---|---|"
    for n in "${one_names[@]}"; do
      IFS=$'\037' read -r c cmd line rc _ < "$O/$n.row"
      cmd=${cmd//"${M[*]}"/TINY}; cmd=${cmd//$BIN/pretrain_gpt}; cmd=${cmd//$T\//}; cmd=${cmd//$PWD\//}
      echo "| $c | \`${cmd//|/\\|}\` | \`${line:-(none)}\` | $rc |"
    done
  } > "$doc.new" && mv "$doc.new" "$doc"
  echo "# wrote the save-faults section of $doc"
fi
