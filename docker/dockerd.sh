#!/usr/bin/env bash
# Starts a Docker engine for machines without systemd or a network bridge (sandboxes, CI VMs), idempotently.
#
# Contract: returns once `docker info` answers; does nothing when an engine already answers. The engine runs
# with --bridge=none --iptables=false, so every build and container must use host networking
# (`docker build --network host`, `network_mode: host`), which is what this repository's compose files do.
# Installs docker.io from Debian when dockerd is missing (root only). Log: $DOCKERD_LOG.
set -euo pipefail

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/tfserve-dockerd.log}
DOCKERD_PIDFILE=${DOCKERD_PIDFILE:-/var/run/tfserve-dockerd.pid}

if docker info >/dev/null 2>&1; then
  echo "docker engine: already running ($(docker info --format '{{.ServerVersion}}'))"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "== installing docker.io (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

echo "== starting dockerd (no bridge, no iptables; log: $DOCKERD_LOG)"
nohup dockerd --bridge=none --iptables=false --ip6tables=false --pidfile="$DOCKERD_PIDFILE" \
  >"$DOCKERD_LOG" 2>&1 &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    echo "docker engine: ready ($(docker info --format '{{.ServerVersion}} {{.Driver}}'))"
    exit 0
  fi
  sleep 1
done
echo "dockerd did not answer within 60 s; last log lines:" >&2
tail -n 30 "$DOCKERD_LOG" >&2
exit 1
