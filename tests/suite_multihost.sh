#!/usr/bin/env bash
# suite_multihost.sh: the trainer across hosts. Two test hosts are network
# namespaces on a private bridge (tools/netns-hosts.sh: their own addresses
# on a /24 of 10.77.x, their own host names through tools/netns-agent.sh,
# Open MPI's daemons started in them by plm_rsh_agent); between hosts only
# TCP on that subnet, shared memory only inside a host. TP stays inside a
# host, DP or PP goes across, and the losses and parameters equal one rank's
# (fp64); so does CP 4 as a2a+p2p, its all-to-alls inside a host and its
# ring across. Killing one host's ranks mid-run ends the job within 30 s, and
# the next run resumes from the last checkpoint with one rank's losses.
# Needs root (network namespaces); otherwise it says why and counts nothing.
source "$(dirname "$0")/lib.sh" || { echo "not ok $(basename "$0" .sh): tests/lib.sh not found (run suites from the repository's tests/)"; exit 1; }  # never run with an empty $T
if [ "$(id -u)" != 0 ]; then echo "# suite_multihost skipped: not root (network namespaces need CAP_NET_ADMIN)"; exit 0; fi
for t in ip unshare mpirun; do
  command -v $t > /dev/null || { echo "# suite_multihost skipped: $t is missing"; exit 0; }
done
P="mt$$_"
NET="10.77.$(($$ % 200 + 20))"
HOSTS="tools/netns-hosts.sh"
# Teardown on every exit, failed or not: processes left in the namespaces,
# then the namespaces (their veths and the bridge go with them).
trap '$HOSTS down "$P" > /dev/null 2>&1' EXIT
if ! $HOSTS up "$P" "$NET" 2 > "$T/up.log" 2>&1; then
  echo "# suite_multihost skipped: cannot create network namespaces here: $(tail -n 1 "$T/up.log")"; exit 0
fi
c=$(test_corpus)
M=$(tiny_model)
# mh OUT NP ARGS...: like mt_run, on the two hosts (2 ranks per host).
mh() {
  local out=$1 np=$2; shift 2
  rm -f "$out.json" "$out.st"
  timeout --kill-after=5 120 $HOSTS mpirun "$P" "$NET" "$np" 2 "$@" --metrics-file "$out.json" --dump-params "$out.st" > "$out.log" 2>&1
}

mt_run "$T/one" 1 ./pretrain_gpt_fp64 $M
# Megatron's hierarchical CP as it is meant: CP 4 as all-to-alls within a
# pair of adjacent CP ranks (one host) and a ring across the hosts.
for row in "tp2_dp2:--tensor-model-parallel-size 2:TP:DP" "tp2_pp2:--tensor-model-parallel-size 2 --pipeline-model-parallel-size 2:TP:PP" \
           "cp4_a2a_p2p_2x2:--context-parallel-size 4 --cp-comm-type a2a+p2p --hierarchical-context-parallel-sizes 2 2:CP all-to-all:the CP ring"; do
  IFS=: read -r name flags inside across <<< "$row"
  if ! mh "$T/$name" 4 ./pretrain_gpt_fp64 $M $flags --log-layout; then
    not_ok "multihost_${name}_equals_one_rank" "run failed: $(tail -n 3 "$T/$name.log" | tr '\n' ' ')"; continue
  fi
  # Where the ranks ran: TP pairs on one host each, two hosts in all.
  hosts=$(sed -n 's/^rank \([0-9]*\) on \([^:]*\):.*/\1 \2/p' "$T/$name.log" | sort -n)
  layout_ok=$(echo "$hosts" | awk -v p="${P//_/-}" '{ h[$1] = $2 } END {
    ok = (h[0] == p "host0" && h[1] == p "host0" && h[2] == p "host1" && h[3] == p "host1"); print ok ? "yes" : "no" }')
  why=$(compare_losses "$T/one.json" "$T/$name.json" 1e-10) &&
    tools/compare "$T/$name.st" "$T/one.st" --max-abs 1e-9 > "$T/$name.cmp" 2>&1 && [ "$layout_ok" = yes ] &&
    ok "multihost_${name}_equals_one_rank ($inside inside a host, $across across: $why; ranks on hosts: $(echo "$hosts" | awk '{ printf "%s%d@%s", (NR > 1 ? " " : ""), $1, $2 }'))" ||
    not_ok "multihost_${name}_equals_one_rank" "$why; layout $layout_ok: $(echo $hosts); $(tail -n 1 "$T/$name.cmp")"
done

# No shared memory between hosts: with TCP taken away the same launch fails.
out=$(MT_NETNS_BTL=self,vader timeout 60 $HOSTS mpirun "$P" "$NET" 4 2 ./pretrain_gpt_fp64 $M \
      --tensor-model-parallel-size 2 --train-iters 1 2>&1); rc=$?
[ $rc != 0 ] && ok "multihost_needs_tcp_between_hosts (btl self,vader alone: exit $rc)" || not_ok multihost_needs_tcp_between_hosts "ran without TCP"

# A host dies: its ranks are killed once a checkpoint exists; the job must
# end within 30 s, and the next run resumes from that checkpoint.
K="$M --tensor-model-parallel-size 2 --train-iters 100000 --lr-decay-style constant --save $T/ck --save-interval 5"
rm -rf "$T/ck"
timeout 200 $HOSTS mpirun "$P" "$NET" 4 2 ./pretrain_gpt_fp64 $K --metrics-file "$T/killed.json" > "$T/killed.log" 2>&1 &
job=$!
for _ in $(seq 600); do
  [ "$(cat "$T/ck/latest_checkpointed_iteration.txt" 2> /dev/null || echo 0)" -ge 10 ] && break
  sleep 0.1
done
victims=$(for pid in $(ip netns pids "${P}h1"); do [[ "$(cat /proc/$pid/comm 2> /dev/null)" == pretrain_gpt* ]] && echo $pid; done)
t0=$(date +%s.%N)
for pid in $victims; do kill -9 "$pid" 2> /dev/null; done
for _ in $(seq 400); do kill -0 $job 2> /dev/null || break; sleep 0.1; done
dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
wait $job; rc=$?
saved=$(cat "$T/ck/latest_checkpointed_iteration.txt" 2> /dev/null || echo 0)
if [ -n "$victims" ] && [ $rc != 0 ] && awk -v d="$dt" 'BEGIN { exit !(d <= 30) }'; then
  ok "multihost_host_killed_job_ends (2 ranks of host 1 SIGKILLed at checkpoint $saved; mpirun exited $rc after ${dt} s)"
else not_ok multihost_host_killed_job_ends "victims '$victims', exit $rc after ${dt} s"; fi
# Resume to 3 iterations past the checkpoint; one rank runs the same
# iterations straight through; the resumed losses equal its.
stop=$((saved + 3))
mh "$T/resumed" 4 ./pretrain_gpt_fp64 ${K/--save /--load $T/ck --save } --exit-interval $stop
mt_run "$T/straight" 1 ./pretrain_gpt_fp64 $M --train-iters 100000 --lr-decay-style constant --exit-interval $stop
grep -E "\"iteration\": ($((saved + 1))|$((saved + 2))|$stop)," "$T/straight.json" > "$T/straight_tail.json"
if grep -q "loaded checkpoint from $T/ck at iteration $saved" "$T/resumed.log" &&
   why=$(compare_losses "$T/straight_tail.json" "$T/resumed.json" 1e-10); then
  ok "multihost_resumes_after_host_loss (from iteration $saved; iterations $((saved + 1))-$stop equal one rank: $why)"
else not_ok multihost_resumes_after_host_loss "$(grep -m1 'loaded\|error' "$T/resumed.log"); ${why:-}"; fi

# Teardown leaves nothing behind.
$HOSTS down "$P" > /dev/null 2>&1
left=$(ip netns list | grep -c "^$P")
[ "$left" = 0 ] && ok "multihost_teardown (no namespace left)" || not_ok multihost_teardown "$left namespaces left"
