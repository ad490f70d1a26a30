#!/bin/sh
# The entrypoint of a fleet's Redis and Sentinel containers, mounted from the fleet's
# ConfigMap next to redis.conf and sentinel.conf. Tested against real redis-server and
# redis-sentinel processes in operator/tests/redis_entrypoint.rs.
#
#   entrypoint.sh redis [redis-server arguments...]
#   entrypoint.sh sentinel [redis-sentinel arguments...]
#   entrypoint.sh prestop   (the Redis container's preStop hook)
#
# The password never reaches a command line (where `ps` shows it): it is written with the
# rest of the runtime settings into a config file in a memory-backed directory that only
# this container's user can read, and that file includes the ConfigMap's own.
#
# Environment: REDIS_PASSWORD (from the fleet's Secret, required); POD_IP (cluster mode:
# the address gossiped to the other nodes); SF_REDIS_PRIMARY_HOST (sentinel mode: the
# primary of a new set, pod 0); SF_SENTINEL_PEERS (sentinel mode: the Sentinels'
# host:port, space-separated, asked for the current primary); SF_SENTINEL_MASTER (the name
# Sentinels monitor); SF_REDIS_PORT (default 6379); SF_ANNOUNCE_HOST (default: this pod's DNS name, `hostname -f`);
# SF_CONF_DIR (default /etc/redis), SF_RUN_DIR (default /run/socketfleet) and SF_DATA_DIR
# (default /data, where cluster mode keeps nodes.conf).
set -eu

role=${1:-}
[ $# -gt 0 ] && shift
conf_dir=${SF_CONF_DIR:-/etc/redis}
run_dir=${SF_RUN_DIR:-/run/socketfleet}
if [ -z "${REDIS_PASSWORD:-}" ]; then
  echo "entrypoint.sh: REDIS_PASSWORD is empty: it comes from the fleet's Secret <fleet>-redis" >&2
  exit 64
fi
announce=${SF_ANNOUNCE_HOST:-$(hostname -f)}
sentinel_master=${SF_SENTINEL_MASTER:-socketfleet}
# redis-cli reads the password from here, never from its command line.
export REDISCLI_AUTH="$REDIS_PASSWORD"
umask 077
mkdir -p "$run_dir"

# conf_has LINE-START: whether the ConfigMap's redis.conf has a line starting so.
conf_has() {
  grep -q "^$1" "$conf_dir/redis.conf"
}

# role_of [redis-cli connection arguments]: `master`, `slave`, or nothing.
role_of() {
  set -- $(redis-cli "$@" role 2>/dev/null)
  echo "${1:-}"
}

# is_role ROLE [redis-cli connection arguments]
is_role() {
  want=$1
  shift
  [ "$(role_of "$@")" = "$want" ]
}

# wait_until TRIES COMMAND...: runs COMMAND every 0.2 s until it succeeds, TRIES times at most.
wait_until() {
  tries=$1
  shift
  i=0
  while [ $i -lt "$tries" ]; do
    "$@" && return 0
    sleep 0.2
    i=$((i + 1))
  done
  return 1
}

# sentinels_primary: "host port" of the primary the first answering Sentinel of
# SF_SENTINEL_PEERS (space-separated host:port) names; fails when none answers.
sentinels_primary() {
  for peer in ${SF_SENTINEL_PEERS:-}; do
    reply=$(timeout 3 redis-cli -h "${peer%:*}" -p "${peer##*:}" sentinel get-master-addr-by-name "$sentinel_master" 2>/dev/null) || continue
    set -- $reply
    [ $# -eq 2 ] && [ "$2" -gt 0 ] 2>/dev/null && { echo "$1 $2"; return 0; }
  done
  return 1
}

# start_in_a_sentinel_set: sets `follow` to "host port" of the primary this Redis starts as
# a replica of, or to nothing when it starts as the primary. The Sentinels decide: a pod
# follows the primary they name. When they name this pod and it has no data (no
# persistence: a restarted container), it stays down until they have failed over and
# follows the new primary, so an empty primary never wins. When no Sentinel answers (a new set), pod
# 0 starts as the primary and the others follow it.
start_in_a_sentinel_set() {
  me="$announce ${SF_REDIS_PORT:-6379}"
  follow=""
  if ! current=$(sentinels_primary); then
    case "${HOSTNAME:-}" in
      *-0) echo "entrypoint.sh: no Sentinel answers: starting as the first primary" ;;
      *) follow="$SF_REDIS_PRIMARY_HOST ${SF_REDIS_PRIMARY_PORT:-6379}" ;;
    esac
    return 0
  fi
  if [ "$current" != "$me" ]; then
    follow=$current
    return 0
  fi
  if ! conf_has 'appendonly no'; then
    echo "entrypoint.sh: the Sentinels name this pod the primary; resuming with its data"
    return 0
  fi
  # It does not ask for a failover (SENTINEL FAILOVER skips the vote): while the Sentinels
  # find the pod down on their own, one of them would start a second failover in a newer
  # epoch and demote the first promoted replica after it took writes. Staying down lets
  # them agree once (down-after-milliseconds, then an elected failover).
  echo "entrypoint.sh: the Sentinels name this pod the primary, but without persistence it has no data: waiting, down, for them to fail over"
  if wait_until 150 primary_moved; then
    echo "entrypoint.sh: $current took over; following it"
    follow=$current
    return 0
  fi
  echo "entrypoint.sh: no failover within 30 s; exiting, so that the next start looks again (an empty primary must not serve)"
  exit 1
}

# primary_moved: the Sentinels name a primary other than this pod (`current`).
primary_moved() {
  current=$(sentinels_primary) && [ "$current" != "$me" ]
}

# hand_slots_to_a_replica NODES_CONF: when this node was a primary owning slots, asks a
# replica of it that answers to take over (`CLUSTER FAILOVER FORCE`: the old primary is
# gone, the other primaries vote) and waits for it, about 15 s at most per replica.
hand_slots_to_a_replica() {
  # nodes.conf lines: id ip:port@bus[,host] flags master-id ping pong epoch link slots...
  me=$(awk '$3 ~ /myself/ && $3 ~ /master/ && NF > 8 {print $1}' "$1")
  [ -n "$me" ] || return 0
  for addr in $(awk -v me="$me" '$4 == me {split($2, a, "@"); print a[1]}' "$1"); do
    host=${addr%:*}
    port=${addr##*:}
    [ "$(redis-cli -h "$host" -p "$port" ping 2>/dev/null)" = PONG ] || continue
    redis-cli -h "$host" -p "$port" cluster failover force >/dev/null 2>&1 || continue
    if wait_until 75 is_role master -h "$host" -p "$port"; then
      echo "entrypoint.sh: $addr took over this node's slots"
      return 0
    fi
  done
  echo "entrypoint.sh: no replica took over this node's slots; the operator reassigns them (their data is lost)"
}

case "$role" in
redis)
  conf="$run_dir/redis.conf"
  {
    echo "include $conf_dir/redis.conf"
    echo "requirepass \"$REDIS_PASSWORD\""
    echo "masterauth \"$REDIS_PASSWORD\""
    if conf_has 'cluster-enabled yes'; then
      # Gossip the pod's own IP, not whatever interface Redis guesses.
      [ -n "${POD_IP:-}" ] && echo "cluster-announce-ip $POD_IP"
    fi
    # Without persistence a restarted container has no data, but nodes.conf (on the
    # pod's volume) would bring back its node id and slots: an empty primary would keep
    # serving them and its replica would copy the emptiness. So a replica holding the
    # data is promoted first, while nothing listens here (its replication link cannot
    # reach an empty node), and this node starts as a new one; the operator introduces it
    # and makes it a replica.
    nodes_conf="${SF_DATA_DIR:-/data}/nodes.conf"
    if conf_has 'cluster-enabled yes' && conf_has 'appendonly no' && [ -e "$nodes_conf" ]; then
      echo "entrypoint.sh: no persistence: starting as a new, empty cluster node" >&2
      hand_slots_to_a_replica "$nodes_conf" >&2
      rm -f "$nodes_conf"
    fi
    if [ -n "${SF_REDIS_PRIMARY_HOST:-}" ]; then
      echo "replica-announce-ip $announce"
      start_in_a_sentinel_set >&2
      [ -n "$follow" ] && echo "replicaof $follow"
    fi
  } >"$conf"
  exec redis-server "$conf" "$@"
  ;;
sentinel)
  # Sentinel rewrites its config file, so it runs from a writable copy.
  conf="$run_dir/sentinel.conf"
  cp "$conf_dir/sentinel.conf" "$conf"
  {
    echo "sentinel auth-pass $sentinel_master \"$REDIS_PASSWORD\""
    # The Sentinels ask their clients (the sidecars) and each other for it too.
    echo "requirepass \"$REDIS_PASSWORD\""
    echo "sentinel sentinel-pass \"$REDIS_PASSWORD\""
    echo "sentinel announce-ip $announce"
  } >>"$conf"
  # A Sentinel (re)starting watches the primary its peers know, not pod 0 by rule.
  if current=$(sentinels_primary); then
    quorum=$(awk -v m="$sentinel_master" '$1 == "sentinel" && $2 == "monitor" && $3 == m {print $6}' "$conf")
    sed -i "s/^sentinel monitor $sentinel_master .*/sentinel monitor $sentinel_master $current ${quorum:-2}/" "$conf"
    echo "entrypoint.sh: the Sentinels name $current as the primary; watching it" >&2
  fi
  exec redis-sentinel "$conf" "$@"
  ;;
prestop)
  # A Redis Cluster primary about to stop hands its slots to a replica first (a manual,
  # coordinated CLUSTER FAILOVER: no acknowledged write is lost and the pause is short),
  # instead of leaving the cluster to notice it gone after cluster-node-timeout. Anything
  # else (a replica, no connected replica, Sentinel mode) stops as it is. Bounded: about
  # 10 s, well inside the pod's termination grace.
  conf_has 'cluster-enabled yes' || exit 0
  port=${SF_REDIS_PORT:-6379}
  is_role master -p "$port" || exit 0
  replica=$(redis-cli -p "$port" info replication 2>/dev/null | grep '^slave0:.*state=online' || true)
  [ -n "$replica" ] || exit 0
  # slave0:ip=10.244.0.12,port=6379,state=online,offset=...,lag=0
  ip=${replica#*ip=}; ip=${ip%%,*}
  rport=${replica#*port=}; rport=${rport%%,*}
  redis-cli -h "$ip" -p "$rport" cluster failover >/dev/null 2>&1 || exit 0
  wait_until 50 is_role slave -p "$port" && exit 0
  echo "entrypoint.sh prestop: $ip:$rport did not take over within 10 s" >&2
  exit 0
  ;;
*)
  echo "usage: entrypoint.sh redis|sentinel|prestop [arguments...]" >&2
  exit 64
  ;;
esac
