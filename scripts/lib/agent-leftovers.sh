# Sourced by scripts that run a node agent on their own bridge and pod range (up.sh in check
# mode, code-order.sh). remove_agent_leftovers DATA_DIR RUNC_ROOT BRIDGE CLUSTER_CIDR BLACKHOLE_BEFORE
# removes what the agent made: its runc containers, the mounts under DATA_DIR, the bridge, the
# masquerade rules, and the blackhole route for CLUSTER_CIDR unless BLACKHOLE_BEFORE (the route as
# it was before the agent started) is non-empty.
remove_agent_leftovers() {
  local data_dir=$1 runc_root=$2 bridge=$3 cluster_cidr=$4 blackhole_before=$5
  for id in $(runc --root "$runc_root" list -q 2>/dev/null); do
    runc --root "$runc_root" delete --force "$id" || true
  done
  { grep -o " $data_dir/[^ ]*" /proc/self/mountinfo || true; } | sort -r | while read -r m; do umount -l "$m" || true; done
  ip link del "$bridge" 2>/dev/null || true
  { iptables -w -t nat -S POSTROUTING | grep -- "-j SKIFF-MASQ-$bridge\$" || true; } | sed 's/^-A/-D/' |
    while read -r rule; do eval iptables -w -t nat "$rule" || true; done
  iptables -w -t nat -F "SKIFF-MASQ-$bridge" 2>/dev/null || true
  iptables -w -t nat -X "SKIFF-MASQ-$bridge" 2>/dev/null || true
  [ -n "$blackhole_before" ] || ip route del blackhole "$cluster_cidr" 2>/dev/null || true
}
