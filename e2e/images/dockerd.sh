#!/usr/bin/env bash
# Starts or stops the Docker engine the container tiers use, by pid, never by name.
#   e2e/images/dockerd.sh start   # starts dockerd in the background unless one answers already
#   e2e/images/dockerd.sh stop    # stops the dockerd that `start` started (its recorded pid)
# dockerd runs with an OCI runtime wrapper as its default runtime (oci-runtime.sh: drops the
# one capability this machine's bounding set lacks, so privileged containers start).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${SPO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/session-pool-operator}
state="$cache/docker"
pidfile="$state/dockerd.pid"
mkdir -p "$state"
log() { printf '[dockerd %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

start() {
  if docker info >/dev/null 2>&1; then
    log "a Docker engine already answers; using it (not started here, so not stopped here)"
    return 0
  fi
  # shellcheck source=lib.sh
  source "$here/lib.sh"
  ensure_packages
  [ "$(id -u)" -eq 0 ] || { log "dockerd must be started as root"; exit 1; }
  install -m 0755 "$here/oci-runtime.sh" "$state/oci-runtime.sh"
  # setsid: the daemon outlives this script and ignores the caller's Ctrl-C; stopped by pid.
  setsid dockerd --add-runtime "spo-runc=$state/oci-runtime.sh" --default-runtime spo-runc \
    --pidfile "$state/dockerd.daemon.pid" >"$state/dockerd.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && { log "dockerd up (pid $(cat "$pidfile"), log $state/dockerd.log)"; return 0; }
    kill -0 "$(cat "$pidfile")" 2>/dev/null || break
    sleep 0.5
  done
  log "dockerd did not answer within 30 s; last lines of its log:"
  tail -20 "$state/dockerd.log" >&2
  stop
  exit 1
}

stop() {
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  rm -f "$pidfile"
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid"
  # dockerd stops its containers (10 s grace each, in parallel) and its containerd first.
  for _ in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || { log "dockerd (pid $pid) stopped"; return 0; }
    sleep 0.5
  done
  log "dockerd (pid $pid) still running after 60 s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
