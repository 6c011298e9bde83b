#!/usr/bin/env bash
# The Docker engine for `make docker-test`, on hosts without systemd.
#   docker/engine.sh start   install docker.io, debootstrap and docker-compose if missing;
#                            start dockerd (no bridge network, no iptables: containers use
#                            --network host only) unless an engine already answers
#   docker/engine.sh stop    stop the dockerd that `start` started (by its pid), if any
set -euo pipefail
cd "$(dirname "$0")/.."
state=var/docker
marker="$state/dockerd.started"

install_missing() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "engine: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q "${missing[@]}" >/dev/null
}

start() {
  install_missing
  if docker info >/dev/null 2>&1; then
    echo "engine: dockerd already running, used as it is"
    return 0
  fi
  mkdir -p "$state"
  echo "engine: starting dockerd --bridge=none --iptables=false (log: $state/dockerd.log)"
  setsid dockerd --bridge=none --iptables=false >"$state/dockerd.log" 2>&1 </dev/null &
  echo $! >"$marker"
  for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
      echo "engine: dockerd up (pid $(cat "$marker"))"
      return 0
    fi
    if ! kill -0 "$(cat "$marker")" 2>/dev/null; then break; fi
    sleep 0.5
  done
  echo "engine: dockerd did not come up; its log ends:" >&2
  tail -n 20 "$state/dockerd.log" >&2
  rm -f "$marker"
  return 1
}

stop() {
  [ -f "$marker" ] || return 0
  local pid
  pid="$(cat "$marker")"
  rm -f "$marker"
  kill -0 "$pid" 2>/dev/null || return 0
  echo "engine: stopping the dockerd started here (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  echo "engine: dockerd (pid $pid) still running after 30 s" >&2
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
