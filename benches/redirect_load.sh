#!/usr/bin/env bash
# Load test of the redirect against a release build with real Redis:
# GET /l/{code} beside GET /healthz on the same server in the same run, then
# the redirect at half its peak rate for tail latency, then a count showing
# every 302 served produced exactly one click event.
#
#   benches/redirect_load.sh            # 10 s per run, 64 connections
#   DURATION=30 CONNS=128 benches/redirect_load.sh
#
# The server (and Redis) run pinned to core 0 and wrk to core 1, so the two
# do not fight over a core; on a shared machine compare the ratios, not the
# absolute figures.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
MITRA_DB_NAME=mitra_bench ensure_services
psql -q "${DATABASE_URL%/*}/postgres" -c "drop database if exists mitra_bench with (force)" \
    -c "create database mitra_bench" >/dev/null
command -v wrk >/dev/null 2>&1 || apt_install wrk
command -v taskset >/dev/null 2>&1 || apt_install util-linux

DURATION="${DURATION:-10}"
CONNS="${CONNS:-64}"
PORT="${BENCH_PORT:-18181}"
BASE="http://127.0.0.1:$PORT"
PREFIX="bench:$$:"
ADMIN="bench-admin-token-0000000"
SERVER_CORE="${SERVER_CORE:-0}"
CLIENT_CORE="${CLIENT_CORE:-1}"

say "building the release binary"
SQLX_OFFLINE=true cargo build --release --quiet

redis_cli() { redis-cli -u "$REDIS_URL" "$@"; }
# Redis shares the server's core: the whole back end on one core, wrk on the other.
if pid="$(redis_cli info server | awk -F: '/^process_id/ {print $2}' | tr -d '\r')" && [ -n "$pid" ]; then
    taskset -pc "$SERVER_CORE" "$pid" >/dev/null 2>&1 || true
fi

export MITRA_ADMIN_TOKEN="$ADMIN" MITRA_LINK_KEYS="1:bench-link-key-bench-link-key" \
    MITRA_LISTEN="127.0.0.1:$PORT" MITRA_REDIS_PREFIX="$PREFIX" MITRA_HTTP_WORKERS=1 \
    RUST_LOG="${RUST_LOG:-info}" SQLX_OFFLINE=true
taskset -c "$SERVER_CORE" target/release/mitra serve --role api >/tmp/mitra-bench.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fs "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$BASE/readyz" >/dev/null || { cat /tmp/mitra-bench.log; die "the server did not become ready"; }

api() { curl -fsS -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' "$@"; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
PROGRAM=$(api -X POST "$BASE/v1/programs" -d '{"name":"Bench","currency":"EUR","landing_domains":["shop.example"],"default_url":"https://shop.example/","commission":{"sale":{"percent_bps":1000}}}' | json_field id)
PARTNER=$(api -X POST "$BASE/v1/partners" -d '{"name":"Bench Partner","email":"bench@example.com"}' | json_field id)
AGREEMENT=$(api -X POST "$BASE/v1/programs/$PROGRAM/agreements" -d "{\"partners\":[{\"partner_id\":\"$PARTNER\",\"share_bps\":10000}]}" | json_field id)
CODE=$(api -X POST "$BASE/v1/links" -d "{\"agreement_id\":\"$AGREEMENT\",\"destination_url\":\"https://shop.example/p?x=1\",\"sub_ids\":{\"sub1\":\"bench\"}}" | json_field code)

UA="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
run_wrk() { # url conns [extra args...] -> wrk output
    local url=$1 conns=$2; shift 2
    taskset -c "$CLIENT_CORE" wrk -t1 -c"$conns" -d"${DURATION}s" --latency -H "User-Agent: $UA" "$@" "$url"
}
rps() { awk '/^Requests\/sec/ {print $2}'; }
pct() { awk -v p="$1" '$1 == p {print $2}'; }
to_ms() { # wrk prints 123.45us, 1.23ms or 1.02s
    python3 -c "import sys,re; v=sys.argv[1]; m=re.match(r'([0-9.]+)(us|ms|s)$', v); n=float(m.group(1)); print(round(n/1000 if m.group(2)=='us' else n*1000 if m.group(2)=='s' else n, 3))" "$1"
}

say "warming up"
DURATION=2 run_wrk "$BASE/l/$CODE" 8 >/dev/null
say "GET /healthz, $CONNS connections, ${DURATION}s"
HEALTH=$(run_wrk "$BASE/healthz" "$CONNS")
say "GET /l/{code}, $CONNS connections, ${DURATION}s"
REDIRECT=$(run_wrk "$BASE/l/$CODE" "$CONNS")
HEALTH_RPS=$(echo "$HEALTH" | rps)
REDIRECT_RPS=$(echo "$REDIRECT" | rps)

# Half the peak rate: connections that each wait 2 ms after every answer.
# A short calibration run tells how many such connections make half the peak.
HALF=$(python3 -c "print(int(float('$REDIRECT_RPS') / 2))")
PACED_CONNS=$(python3 -c "import math; print(max(1, math.ceil($HALF * 2 / 1000)))")
CALIBRATION=$(DURATION=3 WRK_DELAY_MS=2 run_wrk "$BASE/l/$CODE" "$PACED_CONNS" -s benches/paced.lua | rps)
PACED_CONNS=$(python3 -c "import math; print(max(1, round($PACED_CONNS * $HALF / float('$CALIBRATION'))))")
say "GET /l/{code} at about $HALF requests/s ($PACED_CONNS paced connections)"
PACED=$(WRK_DELAY_MS=2 run_wrk "$BASE/l/$CODE" "$PACED_CONNS" -s benches/paced.lua)
PACED_RPS=$(echo "$PACED" | rps)
RSS_KB=$(awk '/^VmHWM/ {print $2}' "/proc/$SERVER/status")

SERVED=$(curl -fs "$BASE/metrics" | awk '/^mitra_http_requests_total\{method="GET",route="\/l\/\{code\}",status="302"\}/ {print $2}')
# SIGTERM: the server answers what is in flight and writes queued clicks.
kill -TERM $SERVER; wait $SERVER || true
trap - EXIT
# The click log's shards are listed in the registry set.
STREAMS=$(redis_cli --raw SMEMBERS "${PREFIX}clicks:shards")
all_entries() { for s in $STREAMS; do redis_cli --raw XRANGE "$s" - +; done; }
EVENTS=$(all_entries | awk 'prev == "n" {sum += $0} {prev = $0} END {print sum + 0}')
DISTINCT=$(all_entries | grep -o '"click_id":"[0-9A-Za-z]*"' | sort -u | wc -l)
for s in $STREAMS "${PREFIX}clicks:shards"; do redis_cli DEL "$s" >/dev/null; done

cat <<EOF

redirect load test ($(date -u +%F), $(nproc) cores, server on core $SERVER_CORE, wrk on core $CLIENT_CORE, ${DURATION}s runs)
                          req/s    p50 ms   p99 ms
GET /healthz          $(printf '%9.0f' "$HEALTH_RPS")  $(printf '%8s' "$(to_ms "$(echo "$HEALTH" | pct 50%)")")  $(printf '%7s' "$(to_ms "$(echo "$HEALTH" | pct 99%)")")   ($CONNS connections)
GET /l/{code}         $(printf '%9.0f' "$REDIRECT_RPS")  $(printf '%8s' "$(to_ms "$(echo "$REDIRECT" | pct 50%)")")  $(printf '%7s' "$(to_ms "$(echo "$REDIRECT" | pct 99%)")")   ($CONNS connections)
GET /l/{code} paced   $(printf '%9.0f' "$PACED_RPS")  $(printf '%8s' "$(to_ms "$(echo "$PACED" | pct 50%)")")  $(printf '%7s' "$(to_ms "$(echo "$PACED" | pct 99%)")")   (half the peak)

redirect / healthz throughput: $(python3 -c "print(f'{$REDIRECT_RPS / $HEALTH_RPS:.0%}')")   (target: at least 70%)
p99 at half the peak rate:     $(to_ms "$(echo "$PACED" | pct 99%)") ms   (target: under 2 ms)
peak resident memory:          $((RSS_KB / 1024)) MiB   (target: under 64 MiB)
302s served: $SERVED, click events logged: $EVENTS, distinct click ids: $DISTINCT
EOF
if [ "$SERVED" = "$EVENTS" ] && [ "$EVENTS" = "$DISTINCT" ]; then
    echo "every 302 produced exactly one click event"
else
    echo "MISMATCH: 302s and click events differ"; exit 1
fi
