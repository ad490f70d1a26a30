#!/usr/bin/env bash
# The network events of the bench's storm, loss and blackhole scenarios, on the clients'
# path only (TCP to or from the instances' PORTS; Redis traffic is untouched). It changes
# firewall rules and kills sockets, so it runs only in the private network namespace
# scripts/bench.sh makes for these scenarios (SF_BENCH_NETNS=1), never on a host's own.
#   bench-net.sh reset PORTS              every client connection to PORTS reset at once
#                                         (the clients' sockets are destroyed: `ss -K`; the
#                                         servers get an RST, the clients an error)
#   bench-net.sh drop PERCENT SECONDS PORTS  drop PERCENT% of the packets either way for
#                                         SECONDS (100: a blackhole; no RST, TCP retransmits)
# PORTS: comma-separated (at most 15, iptables' multiport limit).
set -euo pipefail
[[ ${SF_BENCH_NETNS:-} == 1 ]] || { echo "bench-net.sh: only inside scripts/bench.sh's network namespace" >&2; exit 2; }
case ${1:-} in
  reset)
    ports=${2:?usage: bench-net.sh reset PORTS}
    filter=$(tr ',' '\n' <<< "$ports" | sed 's/.*/dport = :&/' | paste -sd '|' | sed 's/|/ or /g')
    ss -K -t state established "( $filter )" > /dev/null ;;
  drop)
    percent=${2:?usage: bench-net.sh drop PERCENT SECONDS PORTS} seconds=${3:?} ports=${4:?}
    match=()
    if [[ $percent != 100 ]]; then
      match=(-m statistic --mode random --probability "$(python3 -c "print($percent / 100)")")
    fi
    rules=("-p tcp -m multiport --dports $ports" "-p tcp -m multiport --sports $ports")
    remove() { for r in "${rules[@]}"; do iptables -D INPUT $r "${match[@]}" -j DROP 2>/dev/null || true; done; }
    trap remove EXIT
    for r in "${rules[@]}"; do iptables -I INPUT $r "${match[@]}" -j DROP; done
    sleep "$seconds" ;;
  *) echo "usage: bench-net.sh reset PORTS | drop PERCENT SECONDS PORTS" >&2; exit 2 ;;
esac
