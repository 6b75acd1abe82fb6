#!/usr/bin/env bash
# tools/bench-multihost.sh: what crossing hosts costs, on two test hosts made
# of network namespaces (tools/netns-hosts.sh; root only). Prints Markdown:
#   1. MPI all-reduce bandwidth (tools/allreduce_bench): 2 ranks on one host
#      over shared memory (vader) against 1 rank on each host over TCP;
#   2. the trainer's step time for the same layout (TP 2 x DP 2, small model)
#      on one host (shared memory) and on two hosts (TP inside a host over
#      shared memory, DP across over TCP), median of the iterations after the
#      first;
#   3. PP 2 1F1B M 8 with one stage on each host (the pipeline's sends over
#      TCP), without and with --overlap-p2p-communication, runs alternating
#      for 3 rounds: median ms and the time waited on pipeline receives.
# Usage: tools/bench-multihost.sh [ITERS]   (default 12)
set -uo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench-multihost: needs root (network namespaces)" >&2; exit 2; }
iters=${1:-12}
P="mtb$$_" NET="10.77.$(($$ % 200 + 20))"
trap 'tools/netns-hosts.sh down "$P" > /dev/null 2>&1' EXIT
tools/netns-hosts.sh up "$P" "$NET" 2 || exit 1
[ -f data/fortunes_train.bin ] || tools/get-data.sh > /dev/null
export OMP_NUM_THREADS=1
median_ms() { grep -o 'per iteration (ms): [0-9.]*' | awk 'NR > 1 { print $NF }' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "## all-reduce, 2 ranks (tools/allreduce_bench, bus bandwidth GB/s)"
echo
tools/mpirun.sh 2 tools/allreduce_bench --min-bytes 65536 --max-bytes 67108864 > /tmp/bench-mh-shm.$$ 2>&1
MT_NETNS_BTL=self,tcp tools/netns-hosts.sh mpirun "$P" "$NET" 2 1 tools/allreduce_bench --min-bytes 65536 --max-bytes 67108864 > /tmp/bench-mh-tcp.$$ 2>&1
echo "| bytes | one host, shared memory: us | GB/s | two hosts, TCP: us | GB/s |"
echo "|---:|---:|---:|---:|---:|"
# Both runs list the same sizes in the same order: side by side.
paste -d' ' <(awk '$1 ~ /^[0-9]+$/ { print $1, $2, $4 }' /tmp/bench-mh-shm.$$) <(awk '$1 ~ /^[0-9]+$/ { print $1, $2, $4 }' /tmp/bench-mh-tcp.$$) |
  awk '{ printf "| %d | %s | %s | %s | %s |\n", $1, $2, $3, $5, $6 }'
echo
echo "hosts: $(head -n 1 /tmp/bench-mh-shm.$$ | sed 's/allreduce_bench: //') / $(head -n 1 /tmp/bench-mh-tcp.$$ | sed 's/allreduce_bench: //')"
rm -f /tmp/bench-mh-shm.$$ /tmp/bench-mh-tcp.$$
echo
L="--config configs/small.conf --micro-batch-size 2 --global-batch-size 8 --tensor-model-parallel-size 2 --train-iters $iters --log-interval 1"
one=$(tools/mpirun.sh 4 ./pretrain_gpt $L 2>&1 | median_ms)
two=$(tools/netns-hosts.sh mpirun "$P" "$NET" 4 2 ./pretrain_gpt $L 2>&1 | median_ms)
tcp=$(MT_NETNS_BTL=self,tcp tools/netns-hosts.sh mpirun "$P" "$NET" 4 2 ./pretrain_gpt $L 2>&1 | median_ms)
echo "## step time, TP 2 x DP 2, small model (4 x 256, T 128), micro-batch 2, global batch 8, median ms of $((iters - 1)) iterations"
echo
echo "| where | transport | ms/iter |"
echo "|---|---|---:|"
echo "| one host, 4 ranks | shared memory (vader) | $one |"
echo "| two hosts, 2 ranks each | TP: shared memory inside a host; DP: TCP across | $two |"
echo "| two hosts, 2 ranks each | TCP for everything (MT_NETNS_BTL=self,tcp) | $tcp |"
echo
# PP across hosts: each stage's activations and gradients (micro-batch 1 x
# T 128 x 256 floats, 128 KiB) cross TCP, where an early receive has the most
# to hide. The same batches and bits with and without the flag.
Q="--config configs/small.conf --micro-batch-size 1 --global-batch-size 8 --pipeline-model-parallel-size 2 --train-iters $iters --log-interval 1 --log-pipeline"
waited() { awk -f tools/pipeline-waited.awk; }
declare -a pp_ms pp_w
for r in 1 2 3; do
  for k in 0 1; do
    flag=$([ "$k" = 1 ] && echo --overlap-p2p-communication)
    # shellcheck disable=SC2086
    out=$(MT_NETNS_BTL=self,tcp tools/netns-hosts.sh mpirun "$P" "$NET" 2 1 ./pretrain_gpt $Q $flag 2>&1)
    pp_ms[$k]="${pp_ms[$k]:-} $(median_ms <<< "$out")"
    pp_w[$k]="${pp_w[$k]:-} $(waited <<< "$out")"
  done
done
echo "## PP 2 1F1B M 8 across two hosts (one stage each, TCP), small model, median ms of $((iters - 1)) iterations, 3 rounds alternating"
echo
echo "| run | ms/iter, each round | receives waited for, ms per rank and iteration (mean over all iterations), each round |"
echo "|---|---|---|"
echo "| blocking receives |${pp_ms[0]} |${pp_w[0]} |"
echo "| --overlap-p2p-communication |${pp_ms[1]} |${pp_w[1]} |"
