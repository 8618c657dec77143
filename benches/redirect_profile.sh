#!/usr/bin/env bash
# Where a redirect's time goes, counted in CPU instructions (valgrind
# --tool=callgrind), which no other load on a shared machine can blur:
# instructions per request for GET /l/{code}, GET /healthz and the bare
# actix-web 302 (examples/bare_redirect.rs), and the redirect's costliest
# functions. Redis runs as deployed (AOF, fsync every second); its own CPU
# per redirect is read from /proc.
#
#   benches/redirect_profile.sh            # 8 s of load per phase
#   DURATION=20 TOP=40 benches/redirect_profile.sh
#   MITRA_BIN=/tmp/mitra-before benches/redirect_profile.sh   # another build of mitra
#   MITRA_BIN=target/release/mitra BARE_BIN=target/release/examples/bare_redirect \
#       benches/redirect_profile.sh       # release builds as they are: no build at all
#
# Under valgrind the server runs some 50x slower; the counts are per
# request, so that does not matter. Output files stay in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
MITRA_DB_NAME=mitra_bench_profile ensure_services
psql -q "${DATABASE_URL%/*}/postgres" -c "drop database if exists mitra_bench_profile with (force)" \
    -c "create database mitra_bench_profile" >/dev/null
command -v wrk >/dev/null 2>&1 || apt_install wrk
command -v valgrind >/dev/null 2>&1 || apt_install valgrind

DURATION="${DURATION:-8}"
CONNS="${CONNS:-16}"
TOP="${TOP:-30}"
PORT="${BENCH_PORT:-18191}"
BARE_PORT="${BENCH_BARE_PORT:-18190}"
REDIS_PORT="${BENCH_REDIS_PORT:-18189}"
BASE="http://127.0.0.1:$PORT"
BARE="http://127.0.0.1:$BARE_PORT"
ADMIN="bench-admin-token-0000000"
OUT="${OUT:-/tmp/mitra-redirect-profile}"
rm -rf "$OUT" && mkdir -p "$OUT"

# MITRA_BIN and BARE_BIN given (a release build counts the same
# instructions, only without file and line names): nothing is built.
if [ -z "${MITRA_BIN:-}" ] || [ -z "${BARE_BIN:-}" ]; then
    say "building with line tables (cargo build --profile profiling)"
    SQLX_OFFLINE=true cargo build --profile profiling --quiet --bin mitra --example bare_redirect
fi
MITRA_BIN="${MITRA_BIN:-target/profiling/mitra}"
BARE_BIN="${BARE_BIN:-target/profiling/examples/bare_redirect}"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$OUT" "${REDIS_AS_DEPLOYED[@]}" \
    --save '' >"$OUT/redis.log" 2>&1 &
REDIS=$!
PIDS+=("$REDIS")
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

callgrind() { # name command... : runs it under callgrind, instrumenting nothing until told
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/$1.%p" "${@:2}" \
        >"$OUT/$1.log" 2>&1 &
    PIDS+=($!)
}
export MITRA_ADMIN_TOKEN="$ADMIN" MITRA_LINK_KEYS="1:bench-link-key-bench-link-key" \
    MITRA_LISTEN="127.0.0.1:$PORT" MITRA_REDIS_PREFIX="profile:$$:" MITRA_HTTP_WORKERS=1 \
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT" RUST_LOG="${RUST_LOG:-info}" SQLX_OFFLINE=true
callgrind mitra "$MITRA_BIN" serve --role api
MITRA_PID=$!
BARE_LISTEN="127.0.0.1:$BARE_PORT" callgrind bare "$BARE_BIN"
BARE_PID=$!
for _ in $(seq 600); do curl -fs "$BASE/readyz" >/dev/null 2>&1 && curl -fs -o /dev/null "$BARE/l/x" && break; sleep 0.2; done
curl -fs "$BASE/readyz" >/dev/null || { cat "$OUT/mitra.log"; die "mitra did not become ready"; }

api() { curl -fsS -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' "$@"; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
PROGRAM=$(api -X POST "$BASE/v1/programs" -d '{"name":"Bench","currency":"EUR","landing_domains":["shop.example"],"default_url":"https://shop.example/","commission":{"sale":{"percent_bps":1000}}}' | json_field id)
PARTNER=$(api -X POST "$BASE/v1/partners" -d '{"name":"Bench Partner","email":"bench@example.com"}' | json_field id)
# The partner joins the program (invited, then accepted) before an agreement names it.
ENROLLMENT=$(api -X POST "$BASE/v1/programs/$PROGRAM/enrollments" -d "{\"partner_id\":\"$PARTNER\"}" | json_field id)
api -X POST "$BASE/v1/enrollments/$ENROLLMENT/accept" >/dev/null
AGREEMENT=$(api -X POST "$BASE/v1/programs/$PROGRAM/agreements" -d "{\"partners\":[{\"partner_id\":\"$PARTNER\",\"share_bps\":10000}]}" | json_field id)
CODE=$(api -X POST "$BASE/v1/links" -d "{\"agreement_id\":\"$AGREEMENT\",\"destination_url\":\"https://shop.example/p?x=1\",\"sub_ids\":{\"sub1\":\"bench\"}}" | json_field code)

UA="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
load() { wrk -t1 -c"$CONNS" -d"$1s" -H "User-Agent: $UA" "$2" | awk '/^Requests\/sec/ {print $2}'; }
served() { curl -fs "$BASE/metrics" | awk -v m="$1" 'index($0, m) == 1 {print $2}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
totals() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}'; }

say "warming up"
load 3 "$BASE/l/$CODE" >/dev/null
load 3 "$BARE/l/$CODE" >/dev/null
load 3 "$BASE/healthz" >/dev/null

REDIRECT_METRIC='mitra_http_requests_total{method="GET",route="/l/{code}",status="302"}'
HEALTH_METRIC='mitra_http_requests_total{method="GET",route="/healthz",status="200"}'

count_phase() { # label pid url metric out-prefix -> "instructions requests"
    local label=$1 pid=$2 url=$3 metric=$4 prefix=$5 n0 n1 reqs r0 file
    callgrind_control -z "$pid" >/dev/null
    callgrind_control -i on "$pid" >/dev/null
    n0=0; [ -n "$metric" ] && n0=$(served "$metric")
    r0=$(cpu_ticks "$REDIS")
    local rps
    rps=$(load "$DURATION" "$url")
    callgrind_control -i off "$pid" >/dev/null
    if [ -n "$metric" ]; then n1=$(served "$metric"); reqs=$(python3 -c "print(int(float('$n1') - float('$n0')))")
    else reqs=$(python3 -c "print(int(float('$rps') * $DURATION))"); fi
    echo "$(($(cpu_ticks "$REDIS") - r0))" >"$OUT/$label.redis_ticks"
    echo "$reqs" >"$OUT/$label.requests"
    callgrind_control -d "$label" "$pid" >/dev/null
    sleep 2
    file=$(ls -t "$OUT/$prefix".* | grep -v '\.log$' | head -1)
    mv "$file" "$OUT/$label.callgrind"
}

say "counting: GET /l/{code}, $CONNS connections, ${DURATION}s"
count_phase redirect "$MITRA_PID" "$BASE/l/$CODE" "$REDIRECT_METRIC" mitra
say "counting: GET /healthz"
count_phase healthz "$MITRA_PID" "$BASE/healthz" "$HEALTH_METRIC" mitra
say "counting: bare 302"
# The bare handler counts nothing itself: wrk's count of answers stands in.
count_phase bare "$BARE_PID" "$BARE/l/$CODE" "" bare

per_request() { python3 -c "print(round($(totals "$OUT/$1.callgrind") / $(cat "$OUT/$1.requests")))"; }
R=$(per_request redirect) H=$(per_request healthz) B=$(per_request bare)
TICK_US=$(python3 -c "import os; print(1e6 / os.sysconf('SC_CLK_TCK'))")
REDIS_US=$(python3 -c "print(f'{$(cat "$OUT/redirect.redis_ticks") * $TICK_US / (float($(cat "$OUT/redirect.requests")) or 1):.2f}')")
cat <<EOF

instructions per request (callgrind, $(date -u +%F))
  GET /l/{code}   $(printf '%8d' "$R")   ($(cat "$OUT/redirect.requests") requests)
  GET /healthz    $(printf '%8d' "$H")   ($(cat "$OUT/healthz.requests") requests)
  bare 302        $(printf '%8d' "$B")   ($(cat "$OUT/bare.requests") requests)
  bare / redirect: $(python3 -c "print(f'{$B / $R:.2f}')")   healthz / redirect: $(python3 -c "print(f'{$H / $R:.2f}')")
  Redis CPU per redirect under valgrind's pace (fewer events per write than at full speed): $REDIS_US us
  (valgrind hides the CPU's SHA extensions: SHA-256 here runs in software, several
  times its native cost; link codes and click ids each cost one HMAC-SHA256)

the redirect's costliest functions (inclusive instructions per request):
EOF
REQS=$(cat "$OUT/redirect.requests")
callgrind_annotate --inclusive=yes --threshold=100 "$OUT/redirect.callgrind" 2>/dev/null \
    | awk -v n="$REQS" -v top="$TOP" '
        /^-+$/ {sep++; next}
        sep >= 3 && $1 ~ /^[0-9,]+$/ && shown < top {
            ir = $1; gsub(",", "", ir); $1 = ""; $2 = $2
            printf "  %8d  %s\n", ir / n, substr($0, 1, 150); shown++
        }'
echo "RESULT instructions_redirect=$R instructions_healthz=$H instructions_bare=$B"
