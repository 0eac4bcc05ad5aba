#!/usr/bin/env bash
# The main job on one machine: local Kafka and Redis, the embedded SQLite database, the worker and
# the API in the background, then the demo (a steady hour of errors and a burst that spikes).
#   bash scripts/run.sh          start everything and run the demo; worker and API keep running
#   bash scripts/run.sh stop     stop the worker and the API (services: scripts/services.sh down)
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR=.services/run
API_PORT=${API_PORT:-8000}
WORKER_WEB_PORT=${WORKER_WEB_PORT:-6066}
export API_PORT WORKER_WEB_PORT

stop_process() {
  local name=$1 pidfile="$RUN_DIR/$1.pid"
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    echo "run: stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
}

wait_for_url() {
  local name=$1 url=$2 log=$3
  for _ in $(seq 1 120); do
    if .venv/bin/python -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$url" 2>/dev/null; then
      return 0
    fi
    sleep 0.5
  done
  echo "run: $name did not come up at $url; last lines of $log:" >&2
  tail -n 30 "$log" >&2
  exit 1
}

if [ "${1:-}" = "stop" ]; then
  stop_process worker
  stop_process api
  exit 0
fi

bash scripts/bootstrap.sh
bash scripts/services.sh up kafka redis
# shellcheck disable=SC1091
source .services/env

mkdir -p "$RUN_DIR"
stop_process worker
stop_process api

.venv/bin/spikewatch db upgrade

WORKER_INSTANCE_ID="${WORKER_INSTANCE_ID:-worker-1}" .venv/bin/spikewatch worker --loglevel warning >"$RUN_DIR/worker.log" 2>&1 &
echo $! >"$RUN_DIR/worker.pid"
.venv/bin/spikewatch api --port "$API_PORT" >"$RUN_DIR/api.log" 2>&1 &
echo $! >"$RUN_DIR/api.pid"

wait_for_url api "http://127.0.0.1:$API_PORT/_health" "$RUN_DIR/api.log"
wait_for_url worker "http://127.0.0.1:$WORKER_WEB_PORT/metrics" "$RUN_DIR/worker.log"
echo "run: API on http://127.0.0.1:$API_PORT (docs: /api/schema/swagger-ui/), worker metrics on :$WORKER_WEB_PORT/metrics"

.venv/bin/spikewatch demo --api-url "http://127.0.0.1:$API_PORT"

echo
echo "run: the worker and the API keep running (logs in $RUN_DIR/); stop them with: bash scripts/run.sh stop"
