#!/bin/sh
# tools/netns-agent.sh HOST CMD...: Open MPI's plm_rsh_agent for test hosts
# that are network namespaces on one machine (tools/netns-hosts.sh). HOST is
# an address MT_NETNS_SUBNET.K of the private bridge; the command (Open MPI's
# daemon) runs in namespace ${MT_NETNS_PREFIX}h$((K-1)) and in a new UTS
# namespace whose hostname is ${MT_NETNS_PREFIX}host$((K-1)) (characters other
# than letters and digits become -), so each test
# host has its own name (--log-layout, MPI_Get_processor_name).
host=$1
shift
case $host in
  "$MT_NETNS_SUBNET".*) k=${host##*.} ;;
  *) echo "netns-agent: $host is not an address of $MT_NETNS_SUBNET.0/24" >&2; exit 1 ;;
esac
i=$((k - 1))
name=$(echo "${MT_NETNS_PREFIX}host$i" | tr -c "a-zA-Z0-9\n" -)
exec ip netns exec "${MT_NETNS_PREFIX}h$i" unshare -u sh -c "hostname $name && exec $*"
