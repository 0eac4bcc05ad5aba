#!/usr/bin/env bash
# Starts, stops and reports the local Kafka (KRaft), Redis and PostgreSQL that tests and the demo
# use, without Docker: `bash scripts/services.sh up|down|status [kafka] [redis] [postgres]`, and on
# demand a Redis Cluster (`redis-cluster`: 3 masters, 3 replicas) and a Kafka cluster
# (`kafka-cluster`: 3 KRaft nodes, each broker and controller) that no command starts unasked.
# It owns only the processes it started (pid files under .services/): it never touches system
# services, other users' servers or the Python environment.
# Ports: KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT (19093), REDIS_PORT (16379), PG_PORT (15432),
# REDIS_CLUSTER_PORT (17000: the cluster's six nodes take 17000-17005, their bus ports 27000-27005),
# KAFKA_CLUSTER_PORT (19192: brokers on 19192-19194, their controllers on 19195-19197).
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE_DIR=$REPO_DIR/.services
CACHE_DIR=$REPO_DIR/.cache
KAFKA_FILES_DIR=$REPO_DIR/scripts/kafka

KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19093}
REDIS_PORT=${REDIS_PORT:-16379}
PG_PORT=${PG_PORT:-15432}
REDIS_CLUSTER_PORT=${REDIS_CLUSTER_PORT:-17000}
KAFKA_CLUSTER_PORT=${KAFKA_CLUSTER_PORT:-19192}

KAFKA_READY_TIMEOUT_SECONDS=90
KAFKA_STOP_TIMEOUT_SECONDS=30
REDIS_READY_TIMEOUT_SECONDS=15
PG_READY_TIMEOUT_SECONDS=60
REDIS_CLUSTER_READY_TIMEOUT_SECONDS=30
LOG_TAIL_LINES=30

ALL_SERVICES=(kafka redis postgres)
ON_DEMAND_SERVICES=(redis-cluster kafka-cluster)

say() { printf '%s\n' "$*"; }

die() {
    printf 'services.sh: %s\n' "$*" >&2
    exit 1
}

# A service that failed to start is explained by its own logs (one per process), so show the end
# of each.
fail_with_log() {
    local name=$1 log
    shift
    for log in "$@"; do
        printf 'services.sh: %s did not come up. Last %s lines of %s:\n' \
            "$name" "$LOG_TAIL_LINES" "$log" >&2
        if [[ -f $log ]]; then
            tail -n "$LOG_TAIL_LINES" "$log" >&2
        else
            printf '  (no log written)\n' >&2
        fi
    done
    exit 1
}

port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# Pid files can outlive a reboot and the pid be reused, so a pid only counts as ours while the
# process still runs in the state dir the script started it in (its pid file's own dir).
pid_from_file() {
    local pidfile=$1 pid
    [[ -f $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == "$(dirname "$pidfile")" ]] || return 1
    printf '%s' "$pid"
}

stop_pid() {
    local pid=$1 timeout_seconds=$2 waited=0
    kill -TERM "$pid" 2>/dev/null || return 0
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= timeout_seconds * 10)); then
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

# A cluster is up when every node runs and its own check (`ready`) passes, down when no node runs,
# degraded otherwise: cluster_status NAME WHERE READY WHAT_FAILS PID_OF NODE... (`PID_OF NODE`
# succeeds while that node runs).
cluster_status() {
    local name=$1 where=$2 ready=$3 what_fails=$4 pid_of=$5 node
    shift 5
    local -a down=()
    for node in "$@"; do
        "$pid_of" "$node" >/dev/null || down+=("$node")
    done
    if ((${#down[@]} == 0)) && "$ready"; then
        say "$name: up on $where"
    elif ((${#down[@]} == $#)); then
        say "$name: down"
        return 1
    else
        say "$name: degraded (nodes not running: ${down[*]}; $what_fails)"
        return 1
    fi
}

apt_install() {
    say "installing $* from Debian"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; then
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
    fi
}

# --- Kafka --------------------------------------------------------------------------------------

# A node is one KRaft process (broker and controller) with a state dir of its own holding its
# server.properties, data/, kafka.pid and kafka.log. The single broker is one node; the cluster
# is three.
KAFKA_STATE_DIR=$STATE_DIR/kafka
KAFKA_DATA_DIR=$KAFKA_STATE_DIR/data
KAFKA_PIDFILE=$KAFKA_STATE_DIR/kafka.pid
KAFKA_LOG=$KAFKA_STATE_DIR/kafka.log
KAFKA_PROPERTIES=$KAFKA_STATE_DIR/server.properties

kafka_version() {
    if [[ -n ${KAFKA_VERSION:-} ]]; then
        printf '%s' "$KAFKA_VERSION"
    else
        sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_FILES_DIR/pom.xml"
    fi
}

KAFKA_LIBS_DIR=$CACHE_DIR/kafka-$(kafka_version)/libs

kafka_pid() { pid_from_file "$KAFKA_PIDFILE"; }

kafka_fetch() {
    [[ -f $KAFKA_LIBS_DIR/.complete ]] && return 0
    command -v mvn >/dev/null || apt_install maven
    say "kafka: downloading kafka_2.13 $(kafka_version) and its dependencies into $KAFKA_LIBS_DIR"
    # Copy into a scratch dir first so an interrupted download never looks complete.
    local scratch=$KAFKA_LIBS_DIR.partial maven_log=$KAFKA_LIBS_DIR.maven.log
    rm -rf "$scratch"
    mkdir -p "$(dirname "$KAFKA_LIBS_DIR")"
    if ! mvn -B -q -f "$KAFKA_FILES_DIR/pom.xml" dependency:copy-dependencies \
        -Dkafka.version="$(kafka_version)" -DincludeScope=runtime \
        -DoutputDirectory="$scratch" >"$maven_log" 2>&1; then
        tail -n "$LOG_TAIL_LINES" "$maven_log" >&2
        die "kafka: maven could not fetch kafka_2.13 $(kafka_version) (log $maven_log)"
    fi
    rm -rf "$KAFKA_LIBS_DIR"
    mv "$scratch" "$KAFKA_LIBS_DIR"
    touch "$KAFKA_LIBS_DIR/.complete"
}

kafka_install() {
    command -v java >/dev/null || apt_install openjdk-17-jre-headless
    kafka_fetch
}

kafka_java() {
    java -cp "$KAFKA_LIBS_DIR/*" "$@"
}

# An admin command of Kafka's own tools against a running broker, in a small quick JVM; short
# client timeouts from ready-check.properties in the state dir given, so a dead broker fails
# the check at once rather than after a minute.
kafka_admin() {
    local state_dir=$1
    shift
    java -Xmx128m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$KAFKA_LIBS_DIR/*" "$@" \
        --command-config "$state_dir/ready-check.properties"
}

kafka_write_ready_check_config() {
    printf 'default.api.timeout.ms=5000\nrequest.timeout.ms=4000\n' >"$1/ready-check.properties"
}

# Fills the @NAME@ slots of a template: kafka_render TEMPLATE OUTPUT NAME=VALUE...
kafka_render() {
    local template=$1 output=$2 slot
    shift 2
    local -a edits=()
    for slot in "$@"; do edits+=(-e "s|@${slot%%=*}@|${slot#*=}|g"); done
    sed "${edits[@]}" "$template" >"$output"
}

# Each start writes a fresh log; the one before is kept beside it.
kafka_rotate_log() {
    [[ -f $1/kafka.log ]] && mv "$1/kafka.log" "$1/kafka.log.previous"
    return 0
}

kafka_new_cluster_id() {
    kafka_java kafka.tools.StorageTool random-uuid
}

# Formats a node's storage for the cluster id given, once: a formatted node keeps its data.
kafka_format_node() {
    local name=$1 dir=$2 cluster_id=$3
    [[ -f $dir/data/meta.properties ]] && return 0
    say "$name: formatting KRaft storage in $dir/data (cluster $cluster_id)"
    kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" \
        >>"$dir/kafka.log" 2>&1 || fail_with_log "$name" "$dir/kafka.log"
}

# Starts the node of a state dir with the JVM options given and writes its pid file. setsid
# detaches it from the caller's process group (it outlives this shell and a Ctrl-C there); fd 9
# is the state lock, which the node must not inherit.
kafka_start_node() {
    local dir=$1
    shift
    (cd "$dir" && exec setsid java "$@" -XX:+UseG1GC \
        -Djava.awt.headless=true -Dlog4j2.configurationFile="$KAFKA_FILES_DIR/log4j2.properties" \
        -cp "$KAFKA_LIBS_DIR/*" kafka.Kafka "$dir/server.properties") \
        </dev/null >>"$dir/kafka.log" 2>&1 9>&- &
    printf '%s\n' "$!" >"$dir/kafka.pid"
}

kafka_stop_node() {
    local dir=$1 pid
    if pid=$(pid_from_file "$dir/kafka.pid"); then
        stop_pid "$pid" "$KAFKA_STOP_TIMEOUT_SECONDS"
    fi
    rm -f "$dir/kafka.pid"
}

# Waits until the command `ready` succeeds while every node of the state dirs given runs. A node
# that exits fails at once, and nodes that never answer are stopped (the next `up` would take
# them for running ones); either way with the tails of the nodes' logs.
kafka_wait_ready() {
    local name=$1 ready=$2 dir
    shift 2
    local -a dirs=("$@") logs=()
    for dir in "${dirs[@]}"; do logs+=("$dir/kafka.log"); done
    local deadline=$((SECONDS + KAFKA_READY_TIMEOUT_SECONDS))
    while ((SECONDS < deadline)); do
        for dir in "${dirs[@]}"; do
            # kill -0 rather than pid_from_file: a node just started may not have entered its
            # dir yet.
            if ! kill -0 "$(<"$dir/kafka.pid")" 2>/dev/null; then
                rm -f "$dir/kafka.pid"
                fail_with_log "$name" "${logs[@]}"
            fi
        done
        "$ready" && return 0
        sleep 1
    done
    printf 'services.sh: %s gave no metadata within %ss; stopping it\n' \
        "$name" "$KAFKA_READY_TIMEOUT_SECONDS" >&2
    for dir in "${dirs[@]}"; do kafka_stop_node "$dir" & done
    wait
    fail_with_log "$name" "${logs[@]}"
}

# A topic listing is a metadata request answered by the broker itself, so success means clients
# can produce and consume, not merely that the port accepts connections.
kafka_answers_metadata() {
    port_open "$KAFKA_PORT" &&
        kafka_admin "$KAFKA_STATE_DIR" org.apache.kafka.tools.TopicCommand \
            --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list \
            >"$KAFKA_STATE_DIR/ready-check.log" 2>&1
}

kafka_up() {
    local pid
    if pid=$(kafka_pid); then
        say "kafka: already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
        return 0
    fi
    rm -f "$KAFKA_PIDFILE"
    port_open "$KAFKA_PORT" && die "kafka: 127.0.0.1:$KAFKA_PORT is taken by a process not started here"
    port_open "$KAFKA_CONTROLLER_PORT" &&
        die "kafka: 127.0.0.1:$KAFKA_CONTROLLER_PORT is taken by a process not started here"
    kafka_install
    mkdir -p "$KAFKA_DATA_DIR"
    kafka_rotate_log "$KAFKA_STATE_DIR"
    kafka_render "$KAFKA_FILES_DIR/server.properties" "$KAFKA_PROPERTIES" \
        KAFKA_PORT="$KAFKA_PORT" KAFKA_CONTROLLER_PORT="$KAFKA_CONTROLLER_PORT" \
        KAFKA_DATA_DIR="$KAFKA_DATA_DIR"
    kafka_write_ready_check_config "$KAFKA_STATE_DIR"
    if [[ ! -f $KAFKA_DATA_DIR/meta.properties ]]; then
        local cluster_id
        cluster_id=$(kafka_new_cluster_id 2>>"$KAFKA_LOG") || fail_with_log kafka "$KAFKA_LOG"
        kafka_format_node kafka "$KAFKA_STATE_DIR" "$cluster_id"
    fi
    kafka_start_node "$KAFKA_STATE_DIR" -Xms512m -Xmx512m
    kafka_wait_ready kafka kafka_answers_metadata "$KAFKA_STATE_DIR"
    say "kafka: up (pid $(kafka_pid)) on 127.0.0.1:$KAFKA_PORT, log $KAFKA_LOG"
}

kafka_down() {
    local pid
    if pid=$(kafka_pid); then
        say "kafka: stopping pid $pid"
        stop_pid "$pid" "$KAFKA_STOP_TIMEOUT_SECONDS"
    else
        say "kafka: not running"
    fi
    rm -f "$KAFKA_PIDFILE"
}

kafka_status() {
    local pid
    if pid=$(kafka_pid); then
        say "kafka: up (pid $pid) on 127.0.0.1:$KAFKA_PORT"
    else
        say "kafka: down"
        return 1
    fi
}

# --- Kafka cluster ------------------------------------------------------------------------------

# Three combined broker+controller nodes (ids 1-3) of one KRaft cluster: node n serves clients on
# KAFKA_CLUSTER_PORT+n-1 and its controller on KAFKA_CLUSTER_PORT+n+2. Topics default to three
# replicas with min.insync.replicas 2, so the cluster takes acks=all writes with one node down.
KAFKA_CLUSTER_STATE_DIR=$STATE_DIR/kafka-cluster
KAFKA_CLUSTER_NODES=3
KAFKA_CLUSTER_CLUSTER_ID_FILE=$KAFKA_CLUSTER_STATE_DIR/cluster-id

kafka_cluster_node_ids() { seq 1 "$KAFKA_CLUSTER_NODES"; }

kafka_cluster_node_dir() { printf '%s/%s' "$KAFKA_CLUSTER_STATE_DIR" "$1"; }

kafka_cluster_broker_port() { printf '%s' $((KAFKA_CLUSTER_PORT + $1 - 1)); }

kafka_cluster_controller_port() { printf '%s' $((KAFKA_CLUSTER_PORT + KAFKA_CLUSTER_NODES + $1 - 1)); }

kafka_cluster_bootstrap() {
    local node
    local -a brokers=()
    for node in $(kafka_cluster_node_ids); do
        brokers+=("127.0.0.1:$(kafka_cluster_broker_port "$node")")
    done
    local IFS=,
    printf '%s' "${brokers[*]}"
}

kafka_cluster_pid() { pid_from_file "$(kafka_cluster_node_dir "$1")/kafka.pid"; }

kafka_cluster_any_running() {
    local node
    for node in $(kafka_cluster_node_ids); do
        kafka_cluster_pid "$node" >/dev/null && return 0
    done
    return 1
}

kafka_cluster_node_dirs() {
    local node
    for node in $(kafka_cluster_node_ids); do kafka_cluster_node_dir "$node"; printf '\n'; done
}

# Ready means the cluster's metadata lists every node as a broker taking requests (registered and
# unfenced): a node started again after a crash is fenced until it has caught up.
kafka_cluster_ready() {
    local endpoints
    endpoints=$(kafka_admin "$KAFKA_CLUSTER_STATE_DIR" org.apache.kafka.tools.ClusterTool \
        list-endpoints --bootstrap-server "$(kafka_cluster_bootstrap)" 2>&1) || {
        printf '%s\n' "$endpoints" >"$KAFKA_CLUSTER_STATE_DIR/ready-check.log"
        return 1
    }
    printf '%s\n' "$endpoints" >"$KAFKA_CLUSTER_STATE_DIR/ready-check.log"
    (($(awk '$5 == "unfenced" && $6 == "broker"' <<<"$endpoints" | wc -l) == KAFKA_CLUSTER_NODES))
}

kafka_cluster_write_config() {
    local node=$1 dir voters="" other
    dir=$(kafka_cluster_node_dir "$node")
    for other in $(kafka_cluster_node_ids); do
        voters+="${voters:+,}$other@127.0.0.1:$(kafka_cluster_controller_port "$other")"
    done
    mkdir -p "$dir/data"
    kafka_render "$KAFKA_FILES_DIR/cluster-server.properties" "$dir/server.properties" \
        NODE_ID="$node" QUORUM_VOTERS="$voters" DATA_DIR="$dir/data" \
        BROKER_PORT="$(kafka_cluster_broker_port "$node")" \
        CONTROLLER_PORT="$(kafka_cluster_controller_port "$node")"
}

# Starts only the nodes not running, so `up` brings back a node a test killed; it rejoins with its
# data. Every node is formatted with the one cluster id kept beside them.
kafka-cluster_up() {
    kafka_install
    mkdir -p "$KAFKA_CLUSTER_STATE_DIR"
    kafka_write_ready_check_config "$KAFKA_CLUSTER_STATE_DIR"
    if [[ ! -s $KAFKA_CLUSTER_CLUSTER_ID_FILE ]]; then
        kafka_new_cluster_id >"$KAFKA_CLUSTER_CLUSTER_ID_FILE" ||
            die "kafka-cluster: no cluster id from kafka.tools.StorageTool"
    fi
    local node dir port started=0
    for node in $(kafka_cluster_node_ids); do
        kafka_cluster_pid "$node" >/dev/null && continue
        dir=$(kafka_cluster_node_dir "$node")
        rm -f "$dir/kafka.pid"
        for port in $(kafka_cluster_broker_port "$node") $(kafka_cluster_controller_port "$node"); do
            port_open "$port" &&
                die "kafka-cluster: 127.0.0.1:$port is taken by a process not started here"
        done
        kafka_cluster_write_config "$node"
        kafka_rotate_log "$dir"
        kafka_format_node "kafka-cluster node $node" "$dir" "$(<"$KAFKA_CLUSTER_CLUSTER_ID_FILE")"
        kafka_start_node "$dir" -Xms256m -Xmx384m
        started=$((started + 1))
    done
    local -a dirs
    mapfile -t dirs < <(kafka_cluster_node_dirs)
    kafka_wait_ready kafka-cluster kafka_cluster_ready "${dirs[@]}"
    say "kafka-cluster: up on $(kafka_cluster_bootstrap) ($started nodes started), logs under" \
        "$KAFKA_CLUSTER_STATE_DIR"
}

kafka-cluster_down() {
    local node stopped=0
    for node in $(kafka_cluster_node_ids); do
        if kafka_cluster_pid "$node" >/dev/null; then
            stopped=$((stopped + 1))
        fi
    done
    # All at once: one by one, the last nodes would wait out their stop timeout for a controller
    # quorum that the first to stop took away.
    local dir
    while read -r dir; do kafka_stop_node "$dir" & done < <(kafka_cluster_node_dirs)
    wait
    # The next `up` formats a fresh cluster: its data was only ever test data.
    for node in $(kafka_cluster_node_ids); do
        rm -rf "$(kafka_cluster_node_dir "$node")/data"
    done
    rm -f "$KAFKA_CLUSTER_CLUSTER_ID_FILE"
    say "kafka-cluster: stopped $stopped nodes"
}

kafka-cluster_status() {
    # shellcheck disable=SC2046 # one word per node id
    cluster_status kafka-cluster "$(kafka_cluster_bootstrap)" kafka_cluster_ready \
        "not every broker unfenced" kafka_cluster_pid $(kafka_cluster_node_ids)
}

# --- Redis --------------------------------------------------------------------------------------

REDIS_STATE_DIR=$STATE_DIR/redis
REDIS_PIDFILE=$REDIS_STATE_DIR/redis.pid
REDIS_LOG=$REDIS_STATE_DIR/redis.log

redis_pid() { pid_from_file "$REDIS_PIDFILE"; }

redis_answers_ping() {
    [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

redis_up() {
    local pid
    if pid=$(redis_pid); then
        say "redis: already running (pid $pid) on 127.0.0.1:$REDIS_PORT"
        return 0
    fi
    rm -f "$REDIS_PIDFILE"
    port_open "$REDIS_PORT" && die "redis: 127.0.0.1:$REDIS_PORT is taken by a process not started here"
    command -v redis-server >/dev/null || apt_install redis-server
    mkdir -p "$REDIS_STATE_DIR"
    # Test and demo data only: no snapshots, no append-only file.
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes \
        --pidfile "$REDIS_PIDFILE" --logfile "$REDIS_LOG" --dir "$REDIS_STATE_DIR" \
        --save '' --appendonly no 9>&- || fail_with_log redis "$REDIS_LOG"
    local deadline=$((SECONDS + REDIS_READY_TIMEOUT_SECONDS))
    until pid=$(redis_pid) && redis_answers_ping; do
        ((SECONDS < deadline)) || fail_with_log redis "$REDIS_LOG"
        sleep 0.2
    done
    say "redis: up (pid $pid) on 127.0.0.1:$REDIS_PORT, log $REDIS_LOG"
}

redis_down() {
    local pid
    if pid=$(redis_pid); then
        say "redis: stopping pid $pid"
        stop_pid "$pid" 10
    else
        say "redis: not running"
    fi
    rm -f "$REDIS_PIDFILE"
}

redis_status() {
    local pid
    if pid=$(redis_pid); then
        say "redis: up (pid $pid) on 127.0.0.1:$REDIS_PORT"
    else
        say "redis: down"
        return 1
    fi
}

# --- Redis Cluster ------------------------------------------------------------------------------

REDIS_CLUSTER_STATE_DIR=$STATE_DIR/redis-cluster
REDIS_CLUSTER_NODES=6
# A master that stops answering is replaced by its replica after about this long; short, so a
# failover test does not wait long.
REDIS_CLUSTER_NODE_TIMEOUT_MS=3000

redis_cluster_ports() { seq "$REDIS_CLUSTER_PORT" $((REDIS_CLUSTER_PORT + REDIS_CLUSTER_NODES - 1)); }

redis_cluster_range() { printf '127.0.0.1:%s-%s' "$REDIS_CLUSTER_PORT" $((REDIS_CLUSTER_PORT + REDIS_CLUSTER_NODES - 1)); }

redis_cluster_pid() { pid_from_file "$REDIS_CLUSTER_STATE_DIR/$1/redis.pid"; }

redis_cluster_info() {
    redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null | tr -d '\r'
}

# Ready means every node sees all 16384 slots served by three masters, each with its replica.
redis_cluster_ready() {
    local port info
    for port in $(redis_cluster_ports); do
        info=$(redis_cluster_info "$port")
        grep -qx 'cluster_state:ok' <<<"$info" || return 1
        grep -qx 'cluster_size:3' <<<"$info" || return 1
        (($(redis-cli -h 127.0.0.1 -p "$port" cluster nodes 2>/dev/null |
            awk '$3 ~ /slave/ && $3 !~ /fail/' | wc -l) == 3)) || return 1
    done
}

redis_cluster_start_node() {
    local port=$1 dir=$REDIS_CLUSTER_STATE_DIR/$1
    redis_cluster_pid "$port" >/dev/null && return 0
    port_open "$port" && die "redis-cluster: 127.0.0.1:$port is taken by a process not started here"
    mkdir -p "$dir"
    # nodes.conf is kept while the cluster lives, so a node started again (after a test killed it)
    # rejoins, as a replica of whoever took its slots. Without full coverage required, the masters
    # that still serve their slots keep answering while a failed one's slots wait for its replica.
    # Test data only: no snapshots, no AOF.
    (cd "$dir" && redis-server --bind 127.0.0.1 --port "$port" --daemonize yes \
        --cluster-enabled yes --cluster-config-file nodes.conf \
        --cluster-node-timeout "$REDIS_CLUSTER_NODE_TIMEOUT_MS" \
        --cluster-require-full-coverage no \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir" \
        --save '' --appendonly no 9>&-) || fail_with_log "redis-cluster node $port" "$dir/redis.log"
    local deadline=$((SECONDS + REDIS_READY_TIMEOUT_SECONDS))
    until redis_cluster_pid "$port" >/dev/null &&
        [[ $(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) == PONG ]]; do
        ((SECONDS < deadline)) || fail_with_log "redis-cluster node $port" "$dir/redis.log"
        sleep 0.2
    done
}

redis-cluster_up() {
    command -v redis-server >/dev/null || apt_install redis-server
    local port
    for port in $(redis_cluster_ports); do redis_cluster_start_node "$port"; done
    if redis_cluster_info "$REDIS_CLUSTER_PORT" | grep -qx 'cluster_slots_assigned:0'; then
        local -a nodes=()
        for port in $(redis_cluster_ports); do nodes+=("127.0.0.1:$port"); done
        say "redis-cluster: creating 3 masters with a replica each on $(redis_cluster_range)"
        redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes \
            >"$REDIS_CLUSTER_STATE_DIR/create.log" 2>&1 ||
            fail_with_log redis-cluster "$REDIS_CLUSTER_STATE_DIR/create.log"
    fi
    local deadline=$((SECONDS + REDIS_CLUSTER_READY_TIMEOUT_SECONDS))
    until redis_cluster_ready; do
        if ((SECONDS >= deadline)); then
            redis-cli --cluster check "127.0.0.1:$REDIS_CLUSTER_PORT" \
                >"$REDIS_CLUSTER_STATE_DIR/check.log" 2>&1 || true
            fail_with_log redis-cluster "$REDIS_CLUSTER_STATE_DIR/check.log"
        fi
        sleep 0.5
    done
    say "redis-cluster: up on $(redis_cluster_range), logs under $REDIS_CLUSTER_STATE_DIR"
}

redis-cluster_down() {
    local port pid stopped=0
    for port in $(redis_cluster_ports); do
        if pid=$(redis_cluster_pid "$port"); then
            stop_pid "$pid" 10
            stopped=$((stopped + 1))
        fi
        # The next `up` creates a fresh cluster: its data was only ever test data.
        rm -f "$REDIS_CLUSTER_STATE_DIR/$port/redis.pid" "$REDIS_CLUSTER_STATE_DIR/$port/nodes.conf"
    done
    say "redis-cluster: stopped $stopped nodes"
}

redis-cluster_status() {
    # shellcheck disable=SC2046 # one word per port
    cluster_status redis-cluster "$(redis_cluster_range)" redis_cluster_ready \
        "slots not all served" redis_cluster_pid $(redis_cluster_ports)
}

# --- PostgreSQL ---------------------------------------------------------------------------------

pg_bin_dir() {
    local dir
    dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null |
        sort -V | tail -n 1)
    [[ -x $dir/initdb ]] && printf '%s' "$dir"
}

# The server runs as the postgres OS user, which must be able to reach its data dir, and a unix
# socket path may not exceed 107 bytes; when the repo fails either, the data lives in /var/tmp.
pg_locate() {
    PG_BIN=$(pg_bin_dir) || PG_BIN=
    PG_ROOT=$STATE_DIR/postgres
    if ((${#PG_ROOT} >= 80)) || ! runuser -u postgres -- test -x "$STATE_DIR" 2>/dev/null; then
        PG_ROOT=/var/tmp/spikewatch-pg-$(printf '%s' "$REPO_DIR" | sha256sum | cut -c1-12)
    fi
    PG_DATA_DIR=$PG_ROOT/data
    PG_LOG=$PG_ROOT/postgres.log
}

as_postgres() {
    (cd / && runuser -u postgres -- "$@")
}

pg_ctl_status() {
    [[ -f $PG_DATA_DIR/postmaster.pid ]] &&
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA_DIR" status >/dev/null 2>&1
}

pg_psql() {
    as_postgres "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_ROOT" -p "$PG_PORT" \
        -U postgres -d postgres
}

pg_init() {
    mkdir -p "$PG_ROOT"
    chown postgres:postgres "$PG_ROOT"
    chmod 700 "$PG_ROOT"
    if [[ ! -f $PG_DATA_DIR/PG_VERSION ]]; then
        say "postgres: initialising $PG_DATA_DIR"
        as_postgres "$PG_BIN/initdb" -D "$PG_DATA_DIR" -U postgres --auth-local=peer \
            --auth-host=scram-sha-256 --encoding=UTF8 --no-locale --no-sync \
            >"$PG_LOG" 2>&1 || fail_with_log postgres "$PG_LOG"
        printf "\ninclude_if_exists = 'spikewatch.conf'\n" >>"$PG_DATA_DIR/postgresql.conf"
    fi
    touch "$PG_LOG"
    chown postgres:postgres "$PG_LOG"
    # Rewritten on every start so a changed PG_PORT takes effect. Durability is traded for speed
    # because this server only ever holds test data.
    cat >"$PG_DATA_DIR/spikewatch.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_ROOT'
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    chown postgres:postgres "$PG_DATA_DIR/spikewatch.conf"
}

pg_ensure_role_and_database() {
    pg_psql <<'SQL' || fail_with_log postgres "$PG_LOG"
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'spikewatch') THEN
        CREATE ROLE spikewatch LOGIN SUPERUSER PASSWORD 'spikewatch';
    END IF;
END
$$;
SELECT 'CREATE DATABASE spikewatch_test OWNER spikewatch'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'spikewatch_test') \gexec
SQL
}

postgres_up() {
    if ! id postgres >/dev/null 2>&1 || [[ -z $(pg_bin_dir) ]]; then
        apt_install postgresql
    fi
    pg_locate
    [[ -n $PG_BIN ]] || die "postgres: no server binaries under /usr/lib/postgresql"
    if pg_ctl_status; then
        say "postgres: already running on 127.0.0.1:$PG_PORT (data $PG_DATA_DIR)"
        pg_ensure_role_and_database
        return 0
    fi
    port_open "$PG_PORT" && die "postgres: 127.0.0.1:$PG_PORT is taken by a process not started here"
    pg_init
    as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA_DIR" -l "$PG_LOG" -w -t "$PG_READY_TIMEOUT_SECONDS" \
        start >/dev/null 9>&- || fail_with_log postgres "$PG_LOG"
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t "$PG_READY_TIMEOUT_SECONDS" ||
        fail_with_log postgres "$PG_LOG"
    pg_ensure_role_and_database
    say "postgres: up on 127.0.0.1:$PG_PORT (data $PG_DATA_DIR), log $PG_LOG"
}

postgres_down() {
    pg_locate
    if pg_ctl_status; then
        say "postgres: stopping (data $PG_DATA_DIR)"
        as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA_DIR" -m fast -w stop >/dev/null
    else
        say "postgres: not running"
    fi
}

postgres_status() {
    pg_locate
    if pg_ctl_status; then
        say "postgres: up on 127.0.0.1:$PG_PORT (data $PG_DATA_DIR)"
    else
        say "postgres: down"
        return 1
    fi
}

# --- commands -----------------------------------------------------------------------------------

write_env_file() {
    cat >"$STATE_DIR/env" <<EOF
export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
export TEST_POSTGRES_URL=postgresql+asyncpg://spikewatch:spikewatch@127.0.0.1:$PG_PORT/spikewatch_test
EOF
    # Only while a cluster runs: its tests skip without it rather than fail on a cluster nobody
    # asked for.
    if redis_cluster_pid "$REDIS_CLUSTER_PORT" >/dev/null; then
        printf 'export TEST_REDIS_CLUSTER_URL=redis://127.0.0.1:%s\n' "$REDIS_CLUSTER_PORT" \
            >>"$STATE_DIR/env"
    fi
    if kafka_cluster_any_running; then
        printf 'export TEST_KAFKA_CLUSTER_BOOTSTRAP=%s\n' "$(kafka_cluster_bootstrap)" \
            >>"$STATE_DIR/env"
    fi
}

usage() {
    cat >&2 <<'EOF'
usage: bash scripts/services.sh up|down|status [kafka] [redis] [postgres] [redis-cluster]
                                             [kafka-cluster]
  up      start the named services (kafka, redis, postgres when none named) and write
          .services/env; redis-cluster (3 masters, 3 replicas) and kafka-cluster (3 KRaft
          nodes) start only when named, and `up` on a cluster starts its nodes not running
  down    stop the named services that this script started (a cluster's data goes too)
  status  print each named service up or down; exit 1 when any of them is down
EOF
    exit 2
}

main() {
    (($# >= 1)) || usage
    local command=$1 name index failed=0
    shift
    local -a services=("$@")
    ((${#services[@]} > 0)) || services=("${ALL_SERVICES[@]}")
    for name in "${services[@]}"; do
        case $name in
            kafka | redis | postgres | redis-cluster | kafka-cluster) ;;
            *) die "unknown service '$name' (expected: ${ALL_SERVICES[*]} ${ON_DEMAND_SERVICES[*]})" ;;
        esac
    done

    # Several people and CI share one machine: serialise whole commands so two `up`s never race
    # to format the same storage or start the same server twice.
    mkdir -p "$STATE_DIR"
    exec 9>"$STATE_DIR/.lock"
    flock -w 300 9 || die "another services.sh is still running (lock $STATE_DIR/.lock)"

    case $command in
        up)
            for name in "${services[@]}"; do "${name}_up"; done
            write_env_file
            say "environment written to $STATE_DIR/env (source it)"
            ;;
        down)
            for ((index = ${#services[@]} - 1; index >= 0; index--)); do
                "${services[index]}_down"
            done
            ;;
        status)
            for name in "${services[@]}"; do "${name}_status" || failed=1; done
            return "$failed"
            ;;
        *) usage ;;
    esac
}

main "$@"
