#!/usr/bin/env bash
# tools/netns-hosts.sh: test hosts made of Linux network namespaces on one
# machine (root only), for multi-host runs without a cluster
# (tests/suite_multihost.sh, docs/cluster.md).
#
#   tools/netns-hosts.sh up PREFIX SUBNET N   N hosts PREFIXh0..: SUBNET.1 .. SUBNET.N on a bridge in
#                                             namespace PREFIXbr (SUBNET.254), e.g. up mt1_ 10.77.3 2
#   tools/netns-hosts.sh mpirun PREFIX SUBNET NP SLOTS MPIRUN_ARGS...
#                                             mpirun from PREFIXbr, SLOTS ranks per host, daemons started
#                                             in the hosts' namespaces by tools/netns-agent.sh, TCP between
#                                             hosts on SUBNET only (shared memory inside a host;
#                                             MT_NETNS_BTL=self,tcp for TCP everywhere)
#   tools/netns-hosts.sh down PREFIX          ends every process left in the namespaces, removes them
#
# Nothing touches the machine's own network namespace: the hosts and the
# bridge live in namespaces this script creates, on a private /24; every
# address is one of those.
set -uo pipefail
cd "$(dirname "$0")/.."
cmd=${1:-}
case $cmd in
up)
  p=$2 net=$3 n=$4
  set -e
  ip netns add "${p}br"
  ip -n "${p}br" link set lo up
  ip -n "${p}br" link add br0 type bridge
  ip -n "${p}br" addr add "$net.254/24" dev br0
  ip -n "${p}br" link set br0 up
  for ((i = 0; i < n; i++)); do
    ip netns add "${p}h$i"
    ip -n "${p}h$i" link set lo up
    # The veth pair is made inside the two namespaces: no name in the machine's own.
    ip link add eth0 netns "${p}h$i" type veth peer name "v$i" netns "${p}br"
    ip -n "${p}h$i" addr add "$net.$((i + 1))/24" dev eth0
    ip -n "${p}h$i" link set eth0 up
    ip -n "${p}br" link set "v$i" master br0 up
  done
  ;;
mpirun)
  p=$2 net=$3 np=$4 slots=$5
  shift 5
  hosts=$(mktemp /tmp/netns-hosts.XXXXXX)
  for ((k = 1; k <= (np + slots - 1) / slots; k++)); do echo "$net.$k slots=$slots"; done > "$hosts"
  export MT_NETNS_PREFIX=$p MT_NETNS_SUBNET=$net
  ip netns exec "${p}br" mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$np" --hostfile "$hosts" \
    --mca plm_rsh_agent "$PWD/tools/netns-agent.sh" --mca pml ob1 --mca btl "${MT_NETNS_BTL:-self,vader,tcp}" \
    --mca btl_tcp_if_include "$net.0/24" --mca oob_tcp_if_include "$net.0/24" \
    -x OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" -x OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}" -x PATH \
    --wdir "$PWD" "$@"
  rc=$?
  rm -f "$hosts"
  exit $rc
  ;;
down)
  p=$2
  for ns in $(ip netns list | awk '{print $1}' | grep "^${p}"); do
    for pid in $(ip netns pids "$ns" 2> /dev/null); do kill -9 "$pid" 2> /dev/null; done
  done
  for ns in $(ip netns list | awk '{print $1}' | grep "^${p}"); do ip netns del "$ns" 2> /dev/null; done
  ! ip netns list | grep -q "^${p}"
  ;;
*)
  echo "usage: tools/netns-hosts.sh up PREFIX SUBNET N | mpirun PREFIX SUBNET NP SLOTS ARGS... | down PREFIX" >&2
  exit 2
  ;;
esac
