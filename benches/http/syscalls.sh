#!/usr/bin/env bash
# Syscalls, context switches and futex calls per request of each HTTP server under wrk,
# counted by `perf stat` (tracepoints: needs root or perf_event_paranoid <= -1):
#
#   bash benches/http/syscalls.sh            # GET / at 1, 64 and 256 connections
#   CONNS="64" PATHS="/json" bash benches/http/syscalls.sh
#
# Builds the servers as benches/http/run.sh does; both on 127.0.0.1, 3 s of load per point.
set -euo pipefail
cd "$(dirname "$0")/../.."

CONNS=${CONNS:-"1 64 256"}
PATHS=${PATHS:-"/"}
WORKERS=${WORKERS:-2}
PORT=${PORT:-38090}
EVENTS=raw_syscalls:sys_enter,context-switches,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_futex

command -v wrk >/dev/null || { apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null; }
command -v perf >/dev/null || { echo "perf is needed (Debian: linux-perf)" >&2; exit 1; }
cargo build --release --quiet --features hyper --example http_server --example http_server_tokio
BIN=target/release/examples

echo "| server | path | conns | req/s | syscalls | recvfrom | writev | epoll_wait | write | futex | context switches |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for path in $PATHS; do
    for c in $CONNS; do
        for server in http_server http_server_tokio; do
            PORT=$((PORT + 1))
            HTTP_ADDR=127.0.0.1:$PORT HTTP_WORKERS=$WORKERS HTTP_SERVER_SECS=120 "$BIN/$server" >/dev/null &
            pid=$!
            for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
            wrk -t1 -c"$c" -d1s "http://127.0.0.1:$PORT$path" >/dev/null # warm-up
            stats=$(mktemp)
            perf stat -x, -e "$EVENTS" -p "$pid" -o "$stats" &
            perf_pid=$!
            sleep 0.2
            out=$(wrk -t1 -c"$c" -d3s "http://127.0.0.1:$PORT$path")
            kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
            kill -INT "$pid"; wait "$pid" 2>/dev/null || true
            requests=$(awk '/requests in/ { print $1 }' <<<"$out")
            rps=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' <<<"$out")
            per() { awk -F, -v e="$1" -v r="$requests" '$3 == e { printf "%.2f", $1 / r }' "$stats"; }
            echo "| $server | \`$path\` | $c | $rps | $(per raw_syscalls:sys_enter) | $(per syscalls:sys_enter_recvfrom) | $(per syscalls:sys_enter_writev) | $(per syscalls:sys_enter_epoll_wait) | $(per syscalls:sys_enter_write) | $(per syscalls:sys_enter_futex) | $(per context-switches) |"
            rm -f "$stats"
        done
    done
done
