#!/usr/bin/env bash
# suite_tools.sh: the planner (tools/plan) and the per-tensor activation
# breakdown, tools/metrics-diff and tools/compare, and hostile inputs to
# the tools (names that would run commands in gnuplot, FIFOs, devices, a full
# stdout). --help lists every flag of the table, no
# arguments are refused, every shipped config plans, the breakdown sums to
# the allocator's bytes and to Table 2's formula re-derived here, and the
# sweep's fits and no-fits equal one planner run per layout.
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
c=$(test_corpus)

# ---- --help and no arguments --------------------------------------------------
# The flag table's names, from src/flags.c's rows.
table=$(grep -oE '^ *(INT|DBL|STR|BOOL|CHOICE|NOTE|NOTE_ARG)\("--[a-z0-9-]+"|^ *\{"--[a-z0-9-]+"' src/flags.c | grep -oE -- '--[a-z0-9-]+' | sort -u)
nt=$(echo "$table" | wc -l)
help=$(tools/plan --help 2>&1); rc=$?
missing=$(for f in $table --world-size --sweep --memory-gb --machine --help; do grep -qE -- "^ *$f( |$)" <<< "$help" || echo "$f"; done)
[ $rc = 0 ] && [ "$nt" -gt 50 ] && [ -z "$missing" ] && ok "plan_help_lists_every_flag ($nt table flags + 5 of its own)" ||
  not_ok plan_help_lists_every_flag "exit $rc, table $nt flags, missing: $missing"
# The trainer's own --help: every flag of the table, exit 0.
help=$(./pretrain_gpt --help 2>&1); rc=$?
missing=$(for f in $table; do grep -qE -- "^ *$f( |$)" <<< "$help" || echo "$f"; done)
grep -q -- "--config FILE" <<< "$help" || missing="$missing --config"
[ $rc = 0 ] && [ -z "$missing" ] && ok "trainer_help_lists_every_flag ($nt table flags)" ||
  not_ok trainer_help_lists_every_flag "exit $rc, missing: $missing"
# Every other tool: --help exits 0 on stdout and names each flag the tool's
# parser compares against (read from its source, so a new flag without help fails).
bad=""
for t in generate compare prepare_data metrics-diff; do
  h=$(tools/$t --help 2>/dev/null); rc=$?
  [ $rc = 0 ] && [ -n "$h" ] || { bad="$bad $t(exit $rc)"; continue; }
  # (--help itself aside; generate's "--data-path" is the placeholder it hands the trainer's config parser)
  for f in $(grep -oE '"--[a-z][a-z0-9-]+"' tools/$t.c | tr -d '"' | sort -u | grep -vxE -- '--help|--data-path'); do
    grep -q -- "$f" <<< "$h" || bad="$bad $t:$f"
  done
done
for t in plot drift; do tools/$t --help > /dev/null 2>&1 || bad="$bad $t(exit $?)"; done
[ -z "$bad" ] && ok "tools_help (generate compare prepare_data metrics-diff plot drift)" || not_ok tools_help "$bad"
out=$(tools/plan 2>&1); rc=$?
[ $rc = 2 ] && [ "$(echo "$out" | wc -l)" = 1 ] && echo "$out" | grep -q "no launch given" && ok "plan_refuses_no_arguments ($out)" ||
  not_ok plan_refuses_no_arguments "exit $rc: $out"

# ---- every config in configs/ --------------------------------------------------
bad=""
for f in configs/*.conf; do
  timeout 30 tools/plan --config "$f" > "$T/plan_$(basename "$f").txt" 2>&1 && grep -q "^memory (stage 0" "$T/plan_$(basename "$f").txt" ||
    bad="$bad $f: $(tail -n 1 "$T/plan_$(basename "$f").txt")"
done
[ -z "$bad" ] && ok "plan_every_config ($(ls configs/*.conf | wc -l) configs)" || not_ok plan_every_config "$bad"

# ---- the breakdown: rows sum to the allocator and to Table 2 ------------------------
# breakdown_check NP "FLAGS" S B H A T SP MODE: the trainer's --log-memory
# --verbose and the planner print the same rows; "this build" summed over the
# rows times layers and slots equals the measured bytes; "paper" summed equals
# Table 2's formula for the mode, computed here.
breakdown_check() {
  local np=$1 flags=$2 s=$3 b=$4 h=$5 a=$6 t=$7 sp=$8 mode=$9 name=${10}
  $MPIRUN "$np" ./pretrain_gpt $flags --data-path "${c}_train.bin" --train-iters 1 --log-memory --verbose > "$T/bd_$name.log" 2>&1
  tools/plan $flags --world-size "$np" > "$T/bdp_$name.log" 2>&1
  local tr pl want
  tr=$(sed -n '/^activation breakdown/,/all layers:/p' "$T/bd_$name.log" | grep -v 'all layers:')
  pl=$(sed -n '/^activation breakdown/,/all layers:/p' "$T/bdp_$name.log" | grep -v 'all layers:')
  want=$(awk -v s=$s -v b=$b -v h=$h -v a=$a -v t=$t -v sp=$sp -v m=$mode 'BEGIN {
    sbh = s * b * h; x = 5 * a * s / h
    if (m == "full") v = 2 * sbh
    else if (sp) v = sbh * (34 + (m == "selective" ? 0 : x)) / t
    else v = sbh * (10 + 24 / t + (m == "selective" ? 0 : x / t))
    printf "%.0f", v }')
  local res
  # Rows lie between the header ("  tensor ...") and "per layer:"; after the
  # tensor name comes its shape ("R x W" or "-"), then this build's bytes;
  # the last field is the paper's.
  local res
  res=$(echo "$tr" | awk '
    /^  tensor / { on = 1; next }
    /per layer:/ { on = 0 }
    on {
      line = $0; sub(/^  [^ ]+ +/, "", line)
      if (line ~ /^- /) sub(/^- +/, "", line); else sub(/^[0-9]+ x [0-9]+ +/, "", line)
      split(line, g, / +/); mine += g[1]; paper += $NF; rows++ }
    END { printf "%d %.0f %d", mine, paper, rows }')
  set -- $res
  local mine=$1 paper=$2 rows=$3
  local layers slots
  layers=$(grep -o '(\([0-9]*\) layers x' "$T/bd_$name.log" | head -1 | tr -dc 0-9)
  slots=$(grep -o 'layers x \([0-9]*\) micro-batches' "$T/bd_$name.log" | head -1 | tr -dc 0-9)
  local meas; meas=$(grep -o 'measured [0-9]* bytes' "$T/bd_$name.log" | head -1 | tr -dc 0-9)
  if [ -n "$tr" ] && [ "$tr" = "$pl" ] && [ "$paper" = "$want" ] && { [ "$mode" = full ] || [ $((mine * layers * slots)) = "$meas" ]; } &&
     grep -q "all layers: $meas B .*: equal" "$T/bd_$name.log"; then
    ok "breakdown_$name ($rows rows; $mine B per layer x $layers layers x $slots = measured $meas; paper column $paper = Table 2)"
  else
    not_ok "breakdown_$name" "rows $rows, ours $mine x $layers x $slots vs measured '$meas', paper $paper vs $want, trainer==plan: $([ "$tr" = "$pl" ] && echo yes || echo no)"
  fi
}
S="--num-layers 4 --hidden-size 64 --num-attention-heads 8 --seq-length 32 --micro-batch-size 2 --global-batch-size 2"
breakdown_check 1 "$S --hidden-dropout 0.1" 32 2 64 8 1 0 none one_rank
breakdown_check 2 "$S --tensor-model-parallel-size 2" 32 2 64 8 2 0 none tp2
breakdown_check 2 "$S --tensor-model-parallel-size 2 --sequence-parallel" 32 2 64 8 2 1 none tp2_sp
breakdown_check 2 "$S --tensor-model-parallel-size 2 --sequence-parallel --recompute-granularity selective" 32 2 64 8 2 1 selective tp2_sp_selective
breakdown_check 2 "$S --tensor-model-parallel-size 2 --recompute-granularity full --recompute-num-layers 2" 32 2 64 8 2 0 full tp2_full

# ---- the sweep ----------------------------------------------------------------------
# The guide's full-size model without its layout flags (the sweep sets them):
# world 8, 80 GiB per device, the 8-GPU machine file.
grep -vE -- '--(tensor-model|pipeline-model)-parallel-size|--sequence-parallel|--use-flash-attn' configs/megatron-sp-guide.conf > "$T/guide.conf"
tools/plan --sweep --world-size 8 --memory-gb 80 --machine configs/machines/8gpu-node.txt --config "$T/guide.conf" > "$T/sweep.txt" 2>&1; rc=$?
rows=$(grep -E '^ +([0-9]+|-) +(yes|no) ' "$T/sweep.txt")
n=$(echo "$rows" | grep -c .)
if [ $rc = 0 ] && echo "$rows" | grep -q 'TP 4 PP 2 DP 1 CP 1 SP selective$'; then
  ok "sweep_world8_lists_tp4_pp2_sp_selective ($n layouts; $(echo "$rows" | grep 'TP 4 PP 2 DP 1 CP 1 SP selective$' | awk '{print "fits " $2 ", " $(NF-10) " GiB"}'))"
else not_ok sweep_world8_lists_tp4_pp2_sp_selective "exit $rc: $(tail -n 3 "$T/sweep.txt")"; fi
# Every layout's fit and bytes against its own planner run.
bad=0; checked=0
while read -r line; do
  fits=$(echo "$line" | awk '{print $2}'); bytes=$(echo "$line" | awk '{print $(NF-11)}')
  read -r tp pp dp cp spw rc <<< "$(echo "$line" | sed 's/.*TP \([0-9]*\) PP \([0-9]*\) DP \([0-9]*\) CP \([0-9]*\) \([a-zA-Z-]*\) \([a-z]*\)$/\1 \2 \3 \4 \5 \6/')"
  extra=""; [ "$spw" = SP ] && extra="--sequence-parallel"
  max=$(tools/plan --config "$T/guide.conf" --world-size 8 --tensor-model-parallel-size "$tp" --pipeline-model-parallel-size "$pp" \
        --context-parallel-size "$cp" $extra --recompute-granularity "$rc" 2>/dev/null | sed -n 's/^memory (stage [0-9]*, bytes):.* total \([0-9]*\)$/\1/p' | sort -n | tail -1)
  want=no; [ -n "$max" ] && [ "$max" -le $((80 * 1024 * 1024 * 1024)) ] && want=yes
  checked=$((checked + 1))
  if [ "$max" != "$bytes" ] || [ "$want" != "$fits" ]; then bad=$((bad + 1)); echo "  mismatch: $line (plan: $max, $want)"; fi
done <<< "$rows"
[ "$checked" = "$n" ] && [ "$n" -ge 40 ] && [ "$bad" = 0 ] && ok "sweep_fits_equal_planner_per_layout ($checked layouts)" ||
  not_ok sweep_fits_equal_planner_per_layout "$bad of $checked differ"
# a2a+p2p: every split of CP into its all-to-all level and its ring is a row
# (CP 4: 1 x 4, 2 x 2 and 4 x 1), each equal to its own planner run.
tools/plan --sweep --world-size 4 --memory-gb 8 $(tiny_model) --cp-comm-type a2a+p2p > "$T/hsweep.txt" 2>&1; rc=$?
hrows=$(grep -E '^ +([0-9]+|-) +(yes|no) .*\(a2a [0-9]+ x p2p [0-9]+\)' "$T/hsweep.txt")
splits=$(echo "$hrows" | sed -n 's/.*CP 4 (a2a \([0-9]*\) x p2p \([0-9]*\)).*/\1x\2/p' | sort -u | tr '\n' ' ')
bad=0; hn=0
while read -r line; do
  [ -z "$line" ] && continue
  bytes=$(echo "$line" | awk '{print $8}')
  read -r tp pp cp a p spw rcm <<< "$(echo "$line" | sed 's/.*TP \([0-9]*\) PP \([0-9]*\) DP [0-9]* CP \([0-9]*\) (a2a \([0-9]*\) x p2p \([0-9]*\)) \([a-zA-Z-]*\) \([a-z]*\)$/\1 \2 \3 \4 \5 \6 \7/')"
  extra=""; [ "$spw" = SP ] && extra="--sequence-parallel"
  max=$(tools/plan $(tiny_model) --world-size 4 --tensor-model-parallel-size "$tp" --pipeline-model-parallel-size "$pp" --context-parallel-size "$cp" \
        --cp-comm-type a2a+p2p --hierarchical-context-parallel-sizes "$a" "$p" $extra --recompute-granularity "$rcm" 2>/dev/null |
        sed -n 's/^memory (stage [0-9]*, bytes):.* total \([0-9]*\)$/\1/p' | sort -n | tail -1)
  hn=$((hn + 1)); [ "$max" = "$bytes" ] || { bad=$((bad + 1)); echo "  mismatch: $line (plan: $max)"; }
done <<< "$hrows"
[ $rc = 0 ] && [ "$splits" = "1x4 2x2 4x1 " ] && [ "$hn" -ge 9 ] && [ "$bad" = 0 ] &&
  ok "sweep_a2a_p2p_lists_every_split ($hn rows; CP 4 as $splits; bytes equal the planner's)" ||
  not_ok sweep_a2a_p2p_lists_every_split "exit $rc, splits '$splits', $bad of $hn differ"
# World 64 with the distributed optimizer: fitting layouts come first, in
# non-decreasing estimated step time, and the layout count is the whole grid.
tools/plan --sweep --world-size 64 --memory-gb 80 --machine configs/machines/8gpu-node.txt --config "$T/guide.conf" \
  --use-distributed-optimizer > "$T/sweep64.txt" 2>&1
order=$(grep -E '^ +([0-9]+|-) +(yes|no) ' "$T/sweep64.txt" | awk '
  $2 == "yes" { if (seen_no) bad = 1; if (n && $3 < last) bad = 1; last = $3; n++ }
  $2 == "no" { seen_no = 1 }
  END { print (bad ? "bad" : "ok"), n }')
[ "${order%% *}" = ok ] && [ "${order##* }" -gt 0 ] && ok "sweep_world64_sorted_fits_first (${order##* } fit)" || not_ok sweep_world64_sorted_fits_first "$order"
out=$(printf 'device_flops 1e9\nbogus 3\n' > "$T/bad.machine"; tools/plan --sweep --world-size 2 --memory-gb 1 --machine "$T/bad.machine" --config configs/tiny.conf 2>&1); rc=$?
[ $rc = 2 ] && [ "$(echo "$out" | grep -vc '^note')" = 1 ] && echo "$out" | grep -q "bad.machine:2: unknown key" && ok "sweep_bad_machine_file ($out)" ||
  not_ok sweep_bad_machine_file "exit $rc: $out"

# ---- tools/metrics-diff --------------------------------------------------------------
printf '{"config": "x"}\n{"iteration": 1, "lm_loss": 5.5}\n{"iteration": 2, "lm_loss": 4.0}\n{"iteration": 3, "lm_loss": 3.0}\n' > "$T/a.json"
printf '{"iteration": 1, "lm_loss": 5.5}\n{"iteration": 2, "lm_loss": 4.002}\n{"iteration": 3, "lm_loss": 3.0000003}\n' > "$T/b.json"
out=$(tools/metrics-diff "$T/a.json" "$T/b.json" --max-rel 1e-3); rc=$?
# |4.0 - 4.002| / 4.002 = 4.998e-4 is the worst, at iteration 2.
echo "$out" | grep -q "3 iterations compared, 0 in one file only; worst rel diff 4.998e-04 (abs 2.000e-03) at iteration 2" && [ $rc = 0 ] &&
  ok "metrics_diff_worst_iteration" || not_ok metrics_diff_worst_iteration "exit $rc: $out"
tools/metrics-diff "$T/a.json" "$T/b.json" --max-rel 1e-4 > /dev/null; rc1=$?
head -n 3 "$T/b.json" | sed '$d' > "$T/c.json"
tools/metrics-diff "$T/a.json" "$T/c.json" --max-rel 1 > /dev/null; rc2=$?
tools/metrics-diff "$T/a.json" > /dev/null 2>&1; rc3=$?
[ $rc1 = 1 ] && [ $rc2 = 1 ] && [ $rc3 = 2 ] && ok "metrics_diff_bounds_and_usage (over bound 1, missing iteration 1, one file 2)" ||
  not_ok metrics_diff_bounds_and_usage "exit codes $rc1 $rc2 $rc3"
# Hostile inputs: regular files only, one line and exit 2 (a FIFO without a
# writer and /dev/zero hung, a directory was "has no line with iteration");
# an iteration that is no whole number is named, not cast.
mkfifo "$T/md_fifo" 2> /dev/null
printf '{"iteration": nan, "lm_loss": 1.0}\n' > "$T/md_nan.json"
bad=""
for f in "$T/md_fifo" /dev/zero "$T" "$T/md_nan.json"; do
  msg=$(timeout 10 tools/metrics-diff "$T/a.json" "$f" 2>&1 > /dev/null); rc=$?
  [ $rc = 2 ] && [ "$(echo "$msg" | wc -l)" = 1 ] && echo "$msg" | grep -qE "not a regular file|is a directory|not a whole number" ||
    bad="$bad $f: exit $rc '$msg';"
done
[ -z "$bad" ] && ok "metrics_diff_refuses_fifo_device_directory_nan" || not_ok metrics_diff_refuses_fifo_device_directory_nan "$bad"
# 300k iterations (11 MB) match in well under a second (a linear search per
# iteration took minutes); a resumed run's repeated iterations: the last wins.
awk 'BEGIN { for (i = 1; i <= 300000; i++) printf "{\"iteration\": %d, \"lm_loss\": %.6f, \"lr\": 1e-3}\n", i, 5 + i % 7 / 10 }' > "$T/md_big.json"
{ cat "$T/md_big.json"; printf '{"iteration": 299999, "lm_loss": 9.5}\n'; } > "$T/md_big2.json"
out=$(timeout 20 tools/metrics-diff "$T/md_big.json" "$T/md_big2.json" --quiet 2>&1); rc=$?
echo "$out" | grep -q "300000 iterations compared, 0 in one file only; worst rel diff .* at iteration 299999$" && [ $rc = 0 ] &&
  ok "metrics_diff_300k_iterations_fast ($out)" || not_ok metrics_diff_300k_iterations_fast "exit $rc (124: timed out): $out"
# Two real runs: the same layout twice is exact; TP 2 against one rank agrees to fp32 round-off.
X="--config configs/tiny.conf --data-path ${c}_train.bin --train-iters 5"
./pretrain_gpt $X --metrics-file "$T/r1.json" > /dev/null 2>&1
$MPIRUN 2 ./pretrain_gpt $X --tensor-model-parallel-size 2 --metrics-file "$T/r2.json" > /dev/null 2>&1
out=$(tools/metrics-diff "$T/r1.json" "$T/r2.json" --max-rel 1e-5 --quiet); rc=$?
[ $rc = 0 ] && echo "$out" | grep -q "5 iterations compared" && ok "metrics_diff_tp2_vs_one_rank ($(echo "$out" | head -1 | sed 's/.*; //'))" ||
  not_ok metrics_diff_tp2_vs_one_rank "exit $rc: $out"

# ---- tools/plot and tools/drift: hostile names ---------------------------------------
# File names, labels, OUT and TMPDIR reach gnuplot's command line. A quote
# must not end a string and run the rest (system(), a `backquote`, a "!"
# line after a newline would create PWNED_* files in $P: names hold no "/",
# so the shell that would run them finds the directory in $PWN), and every
# label must show in the key as given (a newline as '?').
P="$T/plot"; rm -rf "$P"; mkdir -p "$P"
export PWN="$P/PWNED_"
q="'" bq='`' run='${PWN}'
tmpdir="$P/tmp$q${bq}touch ${run}tmpdir$bq"; mkdir -p "$tmpdir"
printf '{"config": "x"}\n{"iteration": 1, "lm_loss": 5.5, "lr": 1}\n{"iteration": 2, "lm_loss": 4.5, "lr": 1}\n' > "$P/m.json"
names=("x$q ; system(\"touch ${run}quote\") ; print($q" "a${bq}touch ${run}backquote${bq}b" "nl"$'\n'"!touch ${run}newline"$'\n'"x"
       'b\\s $HOME @x "dq"' "-dash")
args=()
for n in "${names[@]}"; do cp "$P/m.json" "$P/$n.json"; args+=("$P/$n.json"); done
args+=("L$q${bq}touch ${run}label$bq=$P/m.json")
out="$P/o$q${bq}touch ${run}out$bq$q.svg"
msg=$(cd "$P" && TMPDIR=$tmpdir timeout 60 "$OLDPWD/tools/plot" "$out" "${args[@]}" 2>&1); rc=$?
missing=""
for l in "${names[@]::2}" "nl?!touch ${run}newline?x" "${names[@]:3}" "L$q${bq}touch ${run}label$bq"; do
  grep -qF -- "<text>$l</text>" "$out" 2> /dev/null || missing="$missing [$l]"
done
pwned=$(cd "$P" && ls -d PWNED* 2> /dev/null | tr '\n' ' ')
[ $rc = 0 ] && [ -z "$pwned" ] && [ -z "$missing" ] && ok "plot_hostile_names_are_text (quote, backquote, newline, backslash, \$, @, dash; OUT and TMPDIR too)" ||
  not_ok plot_hostile_names_are_text "exit $rc, ran: '$pwned', labels missing:$missing; $(echo "$msg" | tail -n 2 | tr '\n' ' ')"
# Inputs are regular files: a FIFO (no writer) and /dev/zero would hang sed.
mkfifo "$P/fifo"
bad=""
for f in "$P/fifo" /dev/zero "$P"; do
  msg=$(timeout 10 tools/plot "$P/x.svg" "$f" 2>&1); rc=$?
  [ $rc = 2 ] && [ "$(echo "$msg" | wc -l)" = 1 ] && echo "$msg" | grep -q "not a readable regular file" || bad="$bad $f: exit $rc '$msg';"
done
[ -z "$bad" ] && [ ! -e "$P/x.svg" ] && ok "plot_refuses_fifo_device_directory" || not_ok plot_refuses_fifo_device_directory "$bad"
# '=' in labels and file names (the argument was split at its first '='
# blindly: "lr=1e-3.json" was the label "lr" on a file "1e-3.json"). A whole
# argument that names a file is that file; otherwise the label ends at the
# first '=' after which the rest names a file (the longer file name wins where
# b=c.json and c.json both exist; LABEL=./FILE picks the shorter).
E="$T/plot_eq"; rm -rf "$E"; mkdir -p "$E/d=1"
for f in lr=1e-3.json b=c.json c.json d=1/m.json; do cp "$P/m.json" "$E/$f"; done
msg=$(cd "$E" && timeout 60 "$OLDPWD/tools/plot" eq.svg lr=1e-3.json first=b=c.json k=v=./c.json "run lr=1e-3=lr=1e-3.json" \
      "$E/d=1/m.json" "abs=$E/d=1/m.json" 2>&1); rc=$?
keys=$(grep -o '<text>[^<]*</text>' "$E/eq.svg" 2> /dev/null | sed 's/<[^>]*>//g' | grep -vxE '[0-9.e+-]*|iteration|lm loss' | tr '\n' '|')
msg2=$(cd "$E" && timeout 60 "$OLDPWD/tools/plot" x.svg nope=missing.json 2>&1); rc2=$?
[ $rc = 0 ] && [ "$keys" = "lr=1e-3|first|k=v|run lr=1e-3|m|abs|" ] && [ $rc2 = 2 ] &&
  [ "$msg2" = "tools/plot: nope=missing.json is not a readable regular file" ] &&
  ok "plot_equals_in_labels_and_file_names (keys: $keys)" ||
  not_ok plot_equals_in_labels_and_file_names "exit $rc, keys '$keys', want 'lr=1e-3|first|k=v|run lr=1e-3|m|abs|'; missing file: exit $rc2 '$msg2'; $(echo "$msg" | tail -n 1)"
# tools/drift's OUT (one tiny run of each kind).
out="$P/d$q ; system(\"touch ${run}drift\") ; print($q.svg"
msg=$(timeout 300 tools/drift "$out" --config configs/tiny.conf --data-path "${c}_train.bin" --train-iters 2 2>&1); rc=$?
pwned=$(cd "$P" && ls -d PWNED* 2> /dev/null | tr '\n' ' ')
[ $rc = 0 ] && [ -z "$pwned" ] && grep -q '<svg' "$out" && ok "drift_hostile_out_name" ||
  not_ok drift_hostile_out_name "exit $rc, ran: '$pwned'; $(echo "$msg" | tail -n 2 | tr '\n' ' ')"
# Relative paths name files from where tools/drift is run: OUT, DRIFT_KEEP,
# --config and --data-path, all relative, from a directory outside the
# repository (the tool cd'ed to the repository, so OUT went under it or
# could not be written, and the config and data were not found).
D="$T/drift_rel"; rm -rf "$D"; mkdir -p "$D/sub"
cp configs/tiny.conf "$D/my.conf"; cp "${c}_train.bin" "$D/train.bin"
msg=$(cd "$D" && DRIFT_KEEP=keep timeout 300 "$OLDPWD/tools/drift" sub/d.svg --config my.conf --data-path train.bin --train-iters 2 2>&1); rc=$?
kept=$(cd "$D/keep" 2> /dev/null && ls *.json 2> /dev/null | tr '\n' ' ')
[ $rc = 0 ] && grep -q '<svg' "$D/sub/d.svg" 2> /dev/null && [ "$kept" = "bf16_t1.json bf16_t2.json fp32.json fp64.json " ] &&
  grep -qx "tools/drift: wrote sub/d.svg" <<< "$msg" && ok "drift_relative_paths_from_caller (OUT, DRIFT_KEEP, --config, --data-path)" ||
  not_ok drift_relative_paths_from_caller "exit $rc, kept '$kept'; $(echo "$msg" | tail -n 2 | tr '\n' ' ')"
# A run that fails reports the trainer's own error line, in one line, and a
# bad flag stays exit 2 (the log's last three lines missed the error line:
# stderr lands before the buffered stdout).
msg=$(timeout 60 tools/drift "$T/bad.svg" --config configs/tiny.conf --data-path "${c}_train.bin" --hidden-size 7 2>&1); rc=$?
[ $rc = 2 ] && [ "$(echo "$msg" | wc -l)" = 1 ] && grep -q '^tools/drift: the fp64 run failed: pretrain_gpt: error: --hidden-size (7)' <<< "$msg" &&
  [ ! -e "$T/bad.svg" ] && ok "drift_failed_run_one_line_exit_2" || not_ok drift_failed_run_one_line_exit_2 "exit $rc: $(echo "$msg" | head -n 3 | tr '\n' ' ')"

# ---- tools/compare: the identically-zero key-bias gradient ------------------------------
# fp32 against fp64 after 20 steps: the key third of every attn.qkv.bias is
# listed apart (its gradient is zero: only round-off, checked on a gradient
# dump), the rest meets a 1e-5 relative-RMS bound, and a difference planted
# in the query part of a bias is still caught.
X="--config configs/tiny.conf --data-path ${c}_train.bin --train-iters 20"
./pretrain_gpt $X --dump-params "$T/c32.st" --dump-step 3 --dump-dir "$T/dump32" > /dev/null 2>&1
./pretrain_gpt_fp64 $X --dump-params "$T/c64.st" > /dev/null 2>&1
out=$(tools/compare "$T/c32.st" "$T/c64.st" --max-rel-rms 1e-5 --top 100); rc=$?
main=$(echo "$out" | sed '/^identically zero gradient/,$d'); zero=$(echo "$out" | sed -n '/^identically zero gradient/,$p')
if [ $rc = 0 ] && [ "$(echo "$zero" | grep -c 'attn.qkv.bias (k)$')" = 4 ] && ! echo "$main" | grep -q '(k)$' &&
   [ "$(echo "$main" | grep -c 'attn.qkv.bias (q, v)$')" = 4 ]; then
  ok "compare_separates_zero_gradient_key_bias ($(echo "$zero" | grep -m1 '(k)$' | awk '{print "rel_rms " $1 " on " $NF " " $(NF-1)}' ))"
else not_ok compare_separates_zero_gradient_key_bias "exit $rc: $(echo "$out" | head -n 5 | tr '\n' ' ')"; fi
zg=$(/usr/bin/python3 - "$T/dump32/step_3.safetensors" <<'PY'
import json, struct, sys, numpy as np
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; h = json.loads(raw[8:8 + n])
worst = 0
for l in range(4):
    t = h["h.%d.attn.qkv.bias.grad" % l]; b, e = t["data_offsets"]
    g = np.frombuffer(raw[8 + n + b:8 + n + e], dtype="<f4").astype(float); k = len(g) // 3
    worst = max(worst, abs(g[k:2 * k]).max() / abs(np.r_[g[:k], g[2 * k:]]).max())
print("%.3g" % worst)
PY
)
awk -v z="$zg" 'BEGIN { exit !(z != "" && z < 1e-6) }' && ok "key_bias_gradient_is_round_off (max |g_k| / max |g_q,v| = $zg)" ||
  not_ok key_bias_gradient_is_round_off "ratio '$zg'"
/usr/bin/python3 - "$T/c32.st" "$T/c32bad.st" <<'PY'
import json, struct, sys, numpy as np
raw = bytearray(open(sys.argv[1], "rb").read()); n = struct.unpack("<Q", raw[:8])[0]; h = json.loads(raw[8:8 + n])
b, e = h["h.2.attn.qkv.bias"]["data_offsets"]
v = np.frombuffer(bytes(raw[8 + n + b:8 + n + b + 4]), dtype="<f4")[0]
raw[8 + n + b:8 + n + b + 4] = np.float32(v + 1e-3).tobytes()  # query bias element 0
open(sys.argv[2], "wb").write(raw)
PY
out=$(tools/compare "$T/c32bad.st" "$T/c64.st" --max-rel-rms 1e-5); rc=$?
[ $rc = 1 ] && echo "$out" | grep -q "^FAIL h.2.attn.qkv.bias: rel_rms" && ok "compare_catches_query_bias_difference" ||
  not_ok compare_catches_query_bias_difference "exit $rc: $(echo "$out" | grep FAIL | head -2)"

# ---- the tools' stdout, ranks and error lines -----------------------------------------
# A full disk under stdout (/dev/full) is exit 1 with one error line, for
# every tool that reports on stdout (they exited 0 silently).
./pretrain_gpt --config configs/tiny.conf --data-path "${c}_train.bin" --train-iters 2 --save "$T/gck" > "$T/gck.log" 2>&1
st="$T/gck/iter_0000002/model.safetensors"
printf '{"iteration": 1, "lm_loss": 5.5}\n' > "$T/full.json"
bad=""
full_check() {  # NAME CMD...: exit 1, and one error line naming stdout
  local name=$1; shift
  local err rc
  timeout 60 "$@" > /dev/full 2> "$T/full_$name.err"; rc=$?
  err=$(grep -v '^generate: [0-9]* layers' "$T/full_$name.err")  # generate's note on the model is no error
  [ "$rc" = 1 ] && [ "$(echo "$err" | wc -l)" = 1 ] && echo "$err" | grep -q "error: cannot write standard output" ||
    bad="$bad $name: exit $rc '$err';"
}
full_check generate tools/generate --load "$T/gck" --tokens 20
full_check plan tools/plan --config configs/tiny.conf
full_check plan_sweep tools/plan --sweep --world-size 4 --memory-gb 8 --config configs/tiny.conf
full_check metrics-diff tools/metrics-diff "$T/full.json" "$T/full.json"
full_check compare tools/compare "$st" "$st"
full_check compare_help tools/compare --help
[ -z "$bad" ] && ok "tools_full_stdout_is_exit_1 (generate, plan, plan --sweep, metrics-diff, compare, compare --help)" ||
  not_ok tools_full_stdout_is_exit_1 "$bad"
# tools/generate is a one-rank tool: under mpirun every rank refuses at
# once (one line, exit 2) instead of each sampling, or waiting on the other.
err=$(timeout 60 $MPIRUN 2 tools/generate --load "$T/gck" --tokens 5 2>&1 > "$T/gen2.out"); rc=$?
[ $rc = 2 ] && [ "$err" = "generate: error: a one-rank tool: run it without mpirun (world size 2)" ] && [ ! -s "$T/gen2.out" ] &&
  ok "generate_refuses_more_than_one_rank ($err)" || not_ok generate_refuses_more_than_one_rank "exit $rc (124: hung): '$err'"
# Error lines name the tool, not the trainer ("pretrain_gpt: error: generate: ...").
e1=$(tools/generate --tokens 5 2>&1); e2=$(tools/plan --config configs/tiny.conf --num-layers x 2>&1)
[ "$e1" = "generate: error: --load DIR is required" ] && [ "$e2" = "plan: error: --num-layers expects an integer, got 'x'" ] &&
  ok "tool_errors_name_the_tool ($e1; $e2)" || not_ok tool_errors_name_the_tool "'$e1' '$e2'"

# ---- the tutorial's numbers ------------------------------------------------------------
# docs/tutorial.sh reruns the tutorial's commands; every line it prints must
# be quoted verbatim in docs/tutorial.md.
out=$(timeout 300 docs/tutorial.sh --check 2>&1); rc=$?
[ $rc = 0 ] && ok "tutorial_numbers_regenerate ($(echo "$out" | tail -n 1))" ||
  not_ok tutorial_numbers_regenerate "$(echo "$out" | tail -n 4 | tr '\n' ' ')"

