#!/usr/bin/env bash
# HTTP benchmark: the same axum router on memkit (`http::serve`, examples/http_server.rs) and on
# tokio (`axum::serve`, benches/http/tokio_server.rs), same worker count, both on 127.0.0.1,
# loaded by wrk (Debian's package; installed here if missing). The two servers run side by
# side and are measured alternately, point by point, in one run.
#
#   bash benches/http/run.sh                # throughput/latency table + overload test
#   SECS=5 ROUNDS=3 WORKERS=2 bash benches/http/run.sh
#
# Prints markdown: requests/s, p50 and p99 latency for GET / and GET /json at 1, 64 and 256
# connections (median of ROUNDS runs of SECS seconds each), each server's peak RSS, then the
# overload test: 512 concurrent 4 MiB uploads against a 256 MiB memory limit.
set -euo pipefail
cd "$(dirname "$0")/../.."

SECS=${SECS:-5}
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-2}
CONNS=${CONNS:-"1 64 256"}
PATHS=${PATHS:-"/ /json"}
MK_PORT=${MK_PORT:-38080}
TK_PORT=${TK_PORT:-38081}

if ! command -v wrk >/dev/null; then
    echo "installing wrk (Debian package)" >&2
    apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
fi
cargo build --release --quiet --features hyper \
    --example http_server --example http_server_tokio --example http_overload
BIN=target/release/examples

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# start NAME BINARY PORT [ENV...]: starts a server bounded to 30 minutes, waits for its port.
start() {
    local name=$1 bin=$2 port=$3; shift 3
    env HTTP_ADDR=127.0.0.1:$port HTTP_WORKERS=$WORKERS HTTP_SERVER_SECS=1800 "$@" \
        "$BIN/$bin" >"/tmp/http-bench-$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then echo $!; return; fi
        sleep 0.1
    done
    echo "server $name did not start" >&2; exit 1
}
peak_rss_mib() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
stop() { kill -INT "$1"; wait "$1" 2>/dev/null || true; }

# to_us VALUE: wrk's "123.45us" / "1.20ms" / "2.00s" in microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "ms") n *= 1000; else if (u == "s") n *= 1000000;
        printf "%.0f", n }'
}

# load PORT PATH CONNS: "rps p50_us p99_us" of one wrk run.
load() {
    local out
    out=$(wrk -t1 -c"$3" -d"${SECS}s" --latency --timeout 10s "http://127.0.0.1:$1$2")
    local rps p50 p99
    rps=$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' <<<"$out")
    p50=$(to_us "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
    p99=$(to_us "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
    if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
        echo "wrk reported errors:" >&2; grep "Non-2xx\|Socket errors" <<<"$out" >&2
    fi
    echo "$rps $p50 $p99"
}
median() { tr ' ' '\n' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

mk=$(start memkit http_server $MK_PORT)
tk=$(start tokio http_server_tokio $TK_PORT)

echo "## HTTP: wrk against memkit (http::serve) and tokio (axum::serve)"
echo
echo "$(nproc) cores, $WORKERS server workers each, wrk -t1, ${SECS} s per point, median of $ROUNDS rounds."
echo
echo "| path | conns | memkit req/s | tokio req/s | ratio | memkit p50 / p99 (us) | tokio p50 / p99 (us) |"
echo "|---|---|---|---|---|---|---|"
for path in $PATHS; do
    for c in $CONNS; do
        declare -a mr=() mp50=() mp99=() tr_=() tp50=() tp99=()
        for round in $(seq "$ROUNDS"); do
            # Alternate which server goes first, so neither always runs on a warmer machine.
            if (( round % 2 )); then order="mk tk"; else order="tk mk"; fi
            for who in $order; do
                if [[ $who == mk ]]; then read -r a b d < <(load $MK_PORT "$path" "$c"); mr+=("$a"); mp50+=("$b"); mp99+=("$d")
                else read -r a b d < <(load $TK_PORT "$path" "$c"); tr_+=("$a"); tp50+=("$b"); tp99+=("$d"); fi
            done
        done
        m=$(echo "${mr[*]}" | median); t=$(echo "${tr_[*]}" | median)
        ratio=$(awk -v m="$m" -v t="$t" 'BEGIN { printf "%.2f", m / t }')
        echo "| \`$path\` | $c | $m | $t | $ratio | $(echo "${mp50[*]}" | median) / $(echo "${mp99[*]}" | median) | $(echo "${tp50[*]}" | median) / $(echo "${tp99[*]}" | median) |"
    done
done
echo
echo "Peak RSS after the run: memkit $(peak_rss_mib "$mk") MiB, tokio $(peak_rss_mib "$tk") MiB."
stop "$mk"; stop "$tk"

echo
echo "## HTTP overload: 512 concurrent POST /upload of 4 MiB, memkit with a 256 MiB limit"
echo
for who in memkit tokio; do
    if [[ $who == memkit ]]; then
        pid=$(start overload-mk http_server $MK_PORT HTTP_MEMORY_LIMIT=$((256 << 20)) HTTP_CONNECTION_BUDGET=$((8 << 20)))
        port=$MK_PORT
    else
        pid=$(start overload-tk http_server_tokio $TK_PORT); port=$TK_PORT
    fi
    result=$(timeout 300 "$BIN/http_overload" "127.0.0.1:$port" 512 $((4 << 20)))
    echo "- $who: $result; server peak RSS $(peak_rss_mib "$pid") MiB"
    stop "$pid"
done
