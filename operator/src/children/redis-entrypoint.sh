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
# primary pods other than ordinal 0 start as replicas of); SF_SENTINEL_MASTER (the name
# Sentinels monitor); SF_ANNOUNCE_HOST (default: this pod's DNS name, `hostname -f`);
# SF_CONF_DIR (default /etc/redis) and SF_RUN_DIR (default /run/socketfleet).
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
umask 077
mkdir -p "$run_dir"

case "$role" in
redis)
  conf="$run_dir/redis.conf"
  {
    echo "include $conf_dir/redis.conf"
    echo "requirepass \"$REDIS_PASSWORD\""
    echo "masterauth \"$REDIS_PASSWORD\""
    if grep -q '^cluster-enabled yes' "$conf_dir/redis.conf"; then
      # Gossip the pod's own IP, not whatever interface Redis guesses.
      [ -n "${POD_IP:-}" ] && echo "cluster-announce-ip $POD_IP"
    fi
    if [ -n "${SF_REDIS_PRIMARY_HOST:-}" ]; then
      echo "replica-announce-ip $announce"
      # Pods other than 0 start as replicas of pod 0; Sentinel takes over from there.
      case "${HOSTNAME:-}" in
        *-0) ;;
        *) echo "replicaof $SF_REDIS_PRIMARY_HOST ${SF_REDIS_PRIMARY_PORT:-6379}" ;;
      esac
    fi
  } >"$conf"
  exec redis-server "$conf" "$@"
  ;;
sentinel)
  # Sentinel rewrites its config file, so it runs from a writable copy.
  conf="$run_dir/sentinel.conf"
  cp "$conf_dir/sentinel.conf" "$conf"
  echo "sentinel auth-pass ${SF_SENTINEL_MASTER:-socketfleet} \"$REDIS_PASSWORD\"" >>"$conf"
  echo "sentinel announce-ip $announce" >>"$conf"
  exec redis-sentinel "$conf" "$@"
  ;;
prestop)
  # A Redis Cluster primary about to stop hands its slots to a replica first (a manual,
  # coordinated CLUSTER FAILOVER: no acknowledged write is lost and the pause is short),
  # instead of leaving the cluster to notice it gone after cluster-node-timeout. Anything
  # else (a replica, no connected replica, Sentinel mode) stops as it is. Bounded: about
  # 10 s, well inside the pod's termination grace.
  grep -q '^cluster-enabled yes' "$conf_dir/redis.conf" || exit 0
  export REDISCLI_AUTH="$REDIS_PASSWORD"
  port=${SF_REDIS_PORT:-6379}
  role() { set -- $(redis-cli -p "$port" role 2>/dev/null); echo "${1:-}"; }
  [ "$(role)" = master ] || exit 0
  replica=$(redis-cli -p "$port" info replication 2>/dev/null | grep '^slave0:.*state=online' || true)
  [ -n "$replica" ] || exit 0
  # slave0:ip=10.244.0.12,port=6379,state=online,offset=...,lag=0
  ip=${replica#*ip=}; ip=${ip%%,*}
  rport=${replica#*port=}; rport=${rport%%,*}
  redis-cli -h "$ip" -p "$rport" cluster failover >/dev/null 2>&1 || exit 0
  i=0
  while [ $i -lt 50 ]; do
    [ "$(role)" = slave ] && exit 0
    sleep 0.2
    i=$((i + 1))
  done
  echo "entrypoint.sh prestop: $ip:$rport did not take over within 10 s" >&2
  exit 0
  ;;
*)
  echo "usage: entrypoint.sh redis|sentinel|prestop [arguments...]" >&2
  exit 64
  ;;
esac
