#!/usr/bin/env bash
# Builds the base image every Dockerfile here names, from Debian packages, for machines that cannot pull images.
#
# Contract: afterwards `docker image inspect $BASE_IMAGE` succeeds. The image is Debian bookworm (minbase) with
# python3 (3.11, bookworm's), python3-venv and ca-certificates, plus this machine's CA bundle and a pip.conf whose
# `cert` points at it, so `pip install` inside a `docker build --network host` reaches the package index the
# same way the host does (through whatever TLS-intercepting proxy the host trusts). Nothing else of the host's
# pip setup is copied: its find-links and local indexes are host paths a build cannot see.
# Idempotent: an existing image is kept unless FORCE=1. Needs root (debootstrap) and a running engine.
# Where images can be pulled, `docker pull debian:bookworm-slim` + python3 gives the same thing; the
# Dockerfiles only need /usr/bin/python3 (3.11) with venv and a CA bundle.
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-tfserve/python:3.11-bookworm}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
HOST_CA=${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}

if [[ "${FORCE:-0}" != 1 ]] && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  echo "base image $BASE_IMAGE: present ($(docker image inspect -f '{{.Size}}' "$BASE_IMAGE" | numfmt --to=iec))"
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  echo "== installing debootstrap (Debian)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

rootfs=$(mktemp -d /var/tmp/tfserve-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

echo "== debootstrap $SUITE (minbase + python3, python3-venv, ca-certificates) into $rootfs"
start=$(date +%s)
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$SUITE" "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"

# Trust what the host trusts (a proxy's CA included), and tell pip so.
install -m 0644 "$HOST_CA" "$rootfs/usr/local/share/ca-certificates/host-bundle.crt"
install -m 0644 "$HOST_CA" "$rootfs/etc/ssl/certs/ca-certificates.crt"
cat >"$rootfs/etc/pip.conf" <<'EOF'
[global]
cert = /etc/ssl/certs/ca-certificates.crt
disable-pip-version-check = true
default-timeout = 180
EOF

# Keep the image small: no package caches, lists, docs, man pages or locales beyond C.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
  "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +

echo "== docker import as $BASE_IMAGE"
tar -C "$rootfs" -c . | docker import \
  --change 'ENV LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1' \
  --change 'CMD ["/usr/bin/python3"]' \
  --message "debootstrap --variant=minbase $SUITE + python3 python3-venv ca-certificates" \
  - "$BASE_IMAGE" >/dev/null
docker run --rm --network host "$BASE_IMAGE" python3 -c 'import sys, venv, ssl; print("python", sys.version.split()[0])'
echo "base image $BASE_IMAGE: built in $(( $(date +%s) - start )) s," \
  "$(docker image inspect -f '{{.Size}}' "$BASE_IMAGE" | numfmt --to=iec)"
