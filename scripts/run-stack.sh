#!/usr/bin/env bash
# Starts the stack locally: the model server (gRPC + REST) on models/models.config, then the gateway.
# Used by `make run`; Ctrl-C stops both. Ports come from the environment (Makefile defaults).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
GRPC_PORT=${GRPC_PORT:-8500}
REST_PORT=${REST_PORT:-8501}
GATEWAY_PORT=${GATEWAY_PORT:-8000}
LOG_DIR=${LOG_DIR:-.run}
mkdir -p "$LOG_DIR"

# A local admin token: kept across runs in a git-ignored file readable only by you.
if [[ -z "${GATEWAY_ADMIN_TOKEN:-}" ]]; then
  if [[ ! -s "$LOG_DIR/admin-token" ]]; then
    (umask 077; "$PY" -c 'import secrets; print(secrets.token_urlsafe(24))' > "$LOG_DIR/admin-token.tmp")
    mv "$LOG_DIR/admin-token.tmp" "$LOG_DIR/admin-token"
  fi
  GATEWAY_ADMIN_TOKEN=$(cat "$LOG_DIR/admin-token")
fi
export GATEWAY_ADMIN_TOKEN

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stack stopped"
}
trap cleanup INT TERM EXIT

wait_http() {  # url, name, pid
  for _ in $(seq 1 240); do
    if "$PY" - "$1" <<'PYEOF' 2>/dev/null; then return 0; fi
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=1).read()
PYEOF
    kill -0 "$3" 2>/dev/null || { echo "$2 exited; last log lines:"; tail -n 30 "$LOG_DIR/$2.log"; return 1; }
    sleep 0.5
  done
  echo "$2 did not become ready; see $LOG_DIR/$2.log"; return 1
}

echo "== starting modelserver: gRPC 127.0.0.1:$GRPC_PORT, REST 127.0.0.1:$REST_PORT (log: $LOG_DIR/modelserver.log)"
MODELSERVER_BIND_HOST=${MODELSERVER_BIND_HOST:-127.0.0.1} "$PY" -m modelserver --port="$GRPC_PORT" --rest_api_port="$REST_PORT" \
  --model_config_file=models/models.config --model_config_file_poll_wait_seconds=2 --file_system_poll_wait_seconds=1 \
  > "$LOG_DIR/modelserver.log" 2>&1 &
pids+=($!)
for m in fashion text housing; do
  wait_http "http://127.0.0.1:$REST_PORT/v1/models/$m" modelserver "${pids[0]}"
done

echo "== starting gateway: http://127.0.0.1:$GATEWAY_PORT (log: $LOG_DIR/gateway.log)"
GATEWAY_PORT="$GATEWAY_PORT" \
GATEWAY_DEFAULT_MODEL_SERVER="127.0.0.1:$GRPC_PORT" \
GATEWAY_MODEL_CONFIG_FILE="${GATEWAY_MODEL_CONFIG_FILE:-models/models.config}" \
  "$PY" -m gateway > "$LOG_DIR/gateway.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$GATEWAY_PORT/readyz" gateway "${pids[1]}"

cat <<MSG

The stack is up.
  web console / API docs : http://127.0.0.1:$GATEWAY_PORT/  and  http://127.0.0.1:$GATEWAY_PORT/docs
  gateway                : http://127.0.0.1:$GATEWAY_PORT
  model server REST      : http://127.0.0.1:$REST_PORT/v1/models/fashion
  model server gRPC      : 127.0.0.1:$GRPC_PORT
  admin token            : stored in $LOG_DIR/admin-token
Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}"
echo "a process of the stack exited; see $LOG_DIR/*.log"
exit 1
