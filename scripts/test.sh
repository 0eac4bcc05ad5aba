#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts the real local services (Kafka, Redis,
# PostgreSQL, a Redis Cluster for the tests marked redis_cluster and a three-node Kafka for those
# marked kafka_cluster), checks lint and format with ruff, then runs pytest. Extra arguments go to
# pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh
bash scripts/services.sh up kafka redis postgres redis-cluster kafka-cluster
# shellcheck disable=SC1091
source .services/env

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

echo "== pytest"
status=0
.venv/bin/python -m pytest -p no:cacheprovider "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "test.sh: pytest collected no tests — that is a failure here" >&2
  exit 1
fi
exit "$status"
