#!/usr/bin/env bash
# suite_llmc.sh: drop-in for llm.c users. configs/llmc.conf with --init-from
# and --data-path and no other flag trains as llm.c's train_gpt2.c does:
# every loss of its 40 steps within 1e-5 (fp32) of tools/torch_reference.py
# --llmc, written from train_gpt2.c's constants, and every tensor within
# 1e-4 relative RMS. The log's "step k" lines are llm.c's, k from 0. With
# weight decay set (1: large enough that decaying biases and norms shows
# over 40 steps at lr 1e-4), decay reaches every tensor as in llm.c; a
# control without --weight-decay-all must differ.
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
PY=/usr/bin/python3
export OMP_WAIT_POLICY=PASSIVE
if ! $PY -c 'import torch' 2>/dev/null; then not_ok torch_available "python3-torch missing (tools/install-deps.sh installs it)"; exit 0; fi
c=$(test_corpus)
$PY tools/torch_reference.py --write-init "$T/m.bin" --layers 2 --heads 2 --channels 32 --vocab 256 --padded-vocab 256 \
  --max-seq 64 --seed 5 > /dev/null || { not_ok llmc_model "write-init failed"; exit 0; }

# The torch side: llm.c's recipe, 40 steps (train_gpt2.c's count), with and
# without weight decay.
$PY tools/torch_reference.py --llmc --model "$T/m.bin" --data "${c}_train.bin" --steps 40 --threads 2 --out "$T/ref.st" \
  > "$T/ref.json" 2> "$T/ref.err" || { not_ok llmc_reference "$(tail -n 1 "$T/ref.err")"; exit 0; }
$PY tools/torch_reference.py --llmc --weight-decay 1 --model "$T/m.bin" --data "${c}_train.bin" --steps 40 --threads 2 \
  --out "$T/ref_wd.st" > "$T/ref_wd.json" 2> "$T/ref_wd.err" || { not_ok llmc_reference_wd "$(tail -n 1 "$T/ref_wd.err")"; exit 0; }

# 1. The recipe, no other flag (the metrics file is read, not passed: the
# trainer's own log lines are compared).
timeout 300 ./pretrain_gpt --config configs/llmc.conf --init-from "$T/m.bin" --data-path "${c}_train.bin" > "$T/c.log" 2>&1 ||
  not_ok llmc_recipe_runs "$(grep -m1 error "$T/c.log")"
# llm.c's lines, "step k: train loss X", as JSON lines for compare_losses;
# the reference's iteration t is llm.c's step t - 1.
sed -n 's/^step \([0-9]*\): train loss \([^ ]*\) .*/{"iteration": \1, "lm_loss": \2}/p' "$T/c.log" > "$T/c_steps.json"
sed -n 's/^{"iteration": \([0-9]*\), "lm_loss": \([^,]*\),.*/\1 \2/p' "$T/ref.json" |
  awk '{ printf "{\"iteration\": %d, \"lm_loss\": %s}\n", $1 - 1, $2 }' > "$T/ref_steps.json"
why=$(compare_losses "$T/ref_steps.json" "$T/c_steps.json" 1e-5); rc=$?
first=$(grep -m1 '^step ' "$T/c.log"); last=$(grep '^step ' "$T/c.log" | tail -n 1)
if [ $rc = 0 ] && [ "$(wc -l < "$T/c_steps.json")" = 40 ] && [[ "$first" == "step 0: train loss "* ]] && [[ "$last" == "step 39: "* ]]; then
  ok "llmc_log_steps_from_0 (40 lines, '${first% (*}' .. '${last% (*}'; $why, at the log's 6 decimals)"
else not_ok llmc_log_steps_from_0 "$why; first '$first', last '$last'"; fi

# 2. The same run with the metrics file and final weights: fp32 bounds.
timeout 300 ./pretrain_gpt --config configs/llmc.conf --init-from "$T/m.bin" --data-path "${c}_train.bin" \
  --metrics-file "$T/c.json" --dump-params "$T/c.st" > "$T/c2.log" 2>&1
why=$(compare_losses "$T/ref.json" "$T/c.json" 1e-5) && tools/compare "$T/ref.st" "$T/c.st" --max-rel-rms 1e-4 > "$T/c.cmp" 2>&1
if [ $? = 0 ]; then ok "llmc_recipe_matches_torch_llmc_mode (40 steps, $why; worst tensor rel RMS $(sed -n 3p "$T/c.cmp" | awk '{print $1, $NF}'))"
else not_ok llmc_recipe_matches_torch_llmc_mode "$why $(tail -n 2 "$T/c.cmp" | tr '\n' ' ')"; fi

# 3. Weight decay on every tensor, and the control: the
# recipe without --weight-decay-all decays only 2-D weights and must differ.
timeout 300 ./pretrain_gpt --config configs/llmc.conf --init-from "$T/m.bin" --data-path "${c}_train.bin" --weight-decay 1 \
  --metrics-file "$T/wd.json" --dump-params "$T/wd.st" > "$T/wd.log" 2>&1
grep -v -- '--weight-decay-all' configs/llmc.conf > "$T/no_all.conf"
timeout 300 ./pretrain_gpt --config "$T/no_all.conf" --init-from "$T/m.bin" --data-path "${c}_train.bin" --weight-decay 1 \
  --dump-params "$T/wd_ctl.st" > "$T/wd_ctl.log" 2>&1
why=$(compare_losses "$T/ref_wd.json" "$T/wd.json" 1e-5) && tools/compare "$T/ref_wd.st" "$T/wd.st" --max-rel-rms 1e-4 > "$T/wd.cmp" 2>&1
if [ $? = 0 ]; then ok "llmc_weight_decay_all_matches ($why)"; else not_ok llmc_weight_decay_all_matches "$why $(tail -n 1 "$T/wd.cmp")"; fi
if [ -f "$T/wd_ctl.st" ] && ! tools/compare "$T/ref_wd.st" "$T/wd_ctl.st" --max-rel-rms 1e-4 > "$T/wd_ctl.cmp" 2>&1; then
  ok "control_decay_on_2d_weights_only_differs (worst tensor: $(sed -n 3p "$T/wd_ctl.cmp" | awk '{print "rel_rms", $1}') $(sed -n 3p "$T/wd_ctl.cmp" | grep -o '[a-z_0-9.]*\.\(weight\|bias\)'))"
else not_ok control_decay_on_2d_weights_only_differs "the control run failed or matched"; fi
