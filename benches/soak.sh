#!/usr/bin/env bash
# Memory under sustained load: redirects and signed sales together for a
# while, against release builds, with Redis persisting as deployed (AOF,
# fsync every second). Samples every mitra process's resident memory every
# 5 s and reports, per role, the idle figure, the plateau (the median of
# the second half of the run) and the peak; then checks that every 302 was
# counted once and every sale booked once.
#
#   benches/soak.sh                                   # 480 s per layout
#   SOAK_SECONDS=120 REDIRECT_RATE=20000 SALE_RATE=200 LAYOUTS=all benches/soak.sh
#   MITRA_BIN=/tmp/mitra-before benches/soak.sh     # another build of mitra
#   LOAD_BIN=target/release/deps/webhook_load-... benches/soak.sh   # no cargo build at all
#
# Layouts: `all` (one process with every role, as `mitra serve` runs by
# default) and `split` (an `api` process and a `worker` process), one after
# the other on fresh databases. Target: every role under 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
MITRA_DB_NAME=mitra_soak ensure_services
command -v wrk >/dev/null 2>&1 || apt_install wrk

SOAK_SECONDS="${SOAK_SECONDS:-480}"
REDIRECT_RATE="${REDIRECT_RATE:-20000}"
SALE_RATE="${SALE_RATE:-200}"
LAYOUTS="${LAYOUTS:-all split}"
PORT="${BENCH_PORT:-18383}"
WORKER_PORT="${BENCH_WORKER_PORT:-18384}"
REDIS_PORT="${BENCH_REDIS_PORT:-18379}"
ADMIN="bench-admin-token-0000000"
WORK="$(mktemp -d /tmp/mitra-soak.XXXXXX)"
PG_ADMIN="${DATABASE_URL%/*}/postgres"

say "building the release binary and the load generator"
# MITRA_BIN=/tmp/mitra-before benches/soak.sh: soak another build of mitra.
if [ -z "${MITRA_BIN:-}" ]; then
    SQLX_OFFLINE=true cargo build --release --quiet --bin mitra
fi
MITRA_BIN="${MITRA_BIN:-target/release/mitra}"
# The load generator is run by path: a `cargo bench` in the middle of the
# soak would first rebuild whatever changed since. LOAD_BIN=path skips the build.
if [ -z "${LOAD_BIN:-}" ]; then
    LOAD_BIN=$(bench_executable webhook_load)
fi
[ -x "$LOAD_BIN" ] || die "no load generator (cargo bench --bench webhook_load --no-run)"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK" "${REDIS_AS_DEPLOYED[@]}" \
    --save '' >"$WORK/redis.log" 2>&1 &
REDIS=$!
PIDS+=("$REDIS")
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
wait_ready() { for _ in $(seq 100); do curl -fs "$1/readyz" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
api() { curl -fsS -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' "$@"; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
stats() { # file -> "plateau peak" of its second half (median) and all (max)
    python3 - "$1" <<'PY'
import statistics, sys
v = [float(x) for x in open(sys.argv[1]).read().split()]
half = v[len(v) // 2:] or v
print(f"{statistics.median(half):.1f} {max(v):.1f}")
PY
}

REPORT=""
FAILED=0
for layout in $LAYOUTS; do
    db="mitra_soak_$layout"
    psql -q "$PG_ADMIN" -c "drop database if exists $db with (force)" -c "create database $db" >/dev/null
    export DATABASE_URL="${DATABASE_URL%/*}/$db" MITRA_ADMIN_TOKEN="$ADMIN" \
        MITRA_LINK_KEYS="1:bench-link-key-bench-link-key" MITRA_REDIS_PREFIX="soak:$layout:$$:" \
        REDIS_URL="redis://127.0.0.1:$REDIS_PORT" RUST_LOG="${RUST_LOG:-warn}" SQLX_OFFLINE=true \
        MITRA_FRAUD_MIN_CLICK_SECONDS=0
    BASE="http://127.0.0.1:$PORT"
    declare -A ROLE_PID=()
    if [ "$layout" = all ]; then
        MITRA_LISTEN="127.0.0.1:$PORT" "$MITRA_BIN" serve >"$WORK/$layout.log" 2>&1 &
        ROLE_PID[all]=$!
    else
        MITRA_LISTEN="127.0.0.1:$PORT" "$MITRA_BIN" serve --role api >"$WORK/$layout-api.log" 2>&1 &
        ROLE_PID[api]=$!
        MITRA_LISTEN="127.0.0.1:$WORKER_PORT" "$MITRA_BIN" serve --role worker >"$WORK/$layout-worker.log" 2>&1 &
        ROLE_PID[worker]=$!
        wait_ready "http://127.0.0.1:$WORKER_PORT" || die "the worker did not become ready"
    fi
    for role in "${!ROLE_PID[@]}"; do PIDS+=("${ROLE_PID[$role]}"); done
    wait_ready "$BASE" || { cat "$WORK"/*.log; die "the server did not become ready"; }

    CREATED=$(api -X POST "$BASE/v1/programs" -d '{"name":"Soak","currency":"EUR","landing_domains":["shop.example"],"default_url":"https://shop.example/","hold_days":30,"commission":{"sale":{"percent_bps":1000}}}')
    PROGRAM=$(echo "$CREATED" | json_field id)
    SECRET=$(echo "$CREATED" | json_field webhook_secret)
    P1=$(api -X POST "$BASE/v1/partners" -d '{"name":"Soak One","email":"one@example.com"}' | json_field id)
    P2=$(api -X POST "$BASE/v1/partners" -d '{"name":"Soak Two","email":"two@example.com"}' | json_field id)
    for P in $P1 $P2; do  # each partner joins the program: invited, then accepted
        E=$(api -X POST "$BASE/v1/programs/$PROGRAM/enrollments" -d "{\"partner_id\":\"$P\"}" | json_field id)
        api -X POST "$BASE/v1/enrollments/$E/accept" >/dev/null
    done
    AGREEMENT=$(api -X POST "$BASE/v1/programs/$PROGRAM/agreements" -d "{\"partners\":[{\"partner_id\":\"$P1\",\"share_bps\":3333},{\"partner_id\":\"$P2\",\"share_bps\":6667}]}" | json_field id)
    LINK_JSON=$(api -X POST "$BASE/v1/links" -d "{\"agreement_id\":\"$AGREEMENT\",\"destination_url\":\"https://shop.example/p?x=1\",\"sub_ids\":{\"sub1\":\"soak\"}}")
    LINK=$(echo "$LINK_JSON" | json_field id)
    CODE=$(echo "$LINK_JSON" | json_field code)
    sleep 2
    for role in "${!ROLE_PID[@]}"; do echo "$(rss_mib "${ROLE_PID[$role]}")" >"$WORK/$layout-$role.idle"; : >"$WORK/$layout-$role.rss"; done

    say "$layout: ${SOAK_SECONDS}s of $REDIRECT_RATE redirects/s and $SALE_RATE signed sales/s"
    # Paced connections: each waits 10 ms after an answer, so rate/100 of them
    # offer the rate (at most; wrk reports what it got).
    CONNS=$(python3 -c "print(max(1, $REDIRECT_RATE // 100))")
    WRK_DELAY_MS=10 wrk -t1 -c"$CONNS" -d"${SOAK_SECONDS}s" -s benches/paced.lua \
        -H "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0" "$BASE/l/$CODE" >"$WORK/$layout.wrk" 2>&1 &
    WRK=$!
    LOAD_MODE=soak LOAD_BASE="$BASE" LOAD_PROGRAM="$PROGRAM" LOAD_SECRET="$SECRET" LOAD_LINK="$LINK" \
        LOAD_RUN_ID="soak$$$layout" LOAD_RATE="$SALE_RATE" LOAD_SECONDS="$SOAK_SECONDS" \
        "$LOAD_BIN" --bench 2>"$WORK/$layout.sales.err" >"$WORK/$layout.sales" &
    SALES=$!
    while kill -0 "$WRK" 2>/dev/null || kill -0 "$SALES" 2>/dev/null; do
        for role in "${!ROLE_PID[@]}"; do rss_mib "${ROLE_PID[$role]}" >>"$WORK/$layout-$role.rss"; echo >>"$WORK/$layout-$role.rss"; done
        sleep 5
    done
    wait "$WRK" || true
    wait "$SALES" || true
    SERVED=$(curl -fs "$BASE/metrics" | awk '/^mitra_http_requests_total\{method="GET",route="\/l\/\{code\}",status="302"\}/ {print $2}')
    SERVED=${SERVED:-0}
    POSTED=$(awk -F'[ =]' '/^RESULT/ {print $3}' "$WORK/$layout.sales")
    REFUSED=$(awk -F'[ =]' '/^RESULT/ {print $5}' "$WORK/$layout.sales")
    say "$layout: waiting until every click is rolled up and every sale booked"
    for _ in $(seq 600); do
        read -r CLICKS BOOKED LEFT < <(psql -tA -F' ' "$DATABASE_URL" -c \
            "select (select coalesce(sum(clicks), 0) from link_click_days),
                    (select count(*) from commissions),
                    (select count(*) from attribution_queue)")
        [ "$CLICKS" -ge "${SERVED%.*}" ] && [ "$LEFT" = 0 ] && break
        sleep 1
    done
    sleep 3
    read -r CLICKS BOOKED CONVERSIONS < <(psql -tA -F' ' "$DATABASE_URL" -c \
        "select (select coalesce(sum(clicks), 0) from link_click_days), (select count(*) from commissions),
                (select count(*) from conversions)")
    for role in "${!ROLE_PID[@]}"; do
        read -r PLATEAU PEAK < <(stats "$WORK/$layout-$role.rss")
        REPORT+=$(printf '%-6s %-7s %8s %9s %7s\n' "$layout" "$role" "$(cat "$WORK/$layout-$role.idle")" "$PLATEAU" "$PEAK")$'\n'
        python3 -c "import sys; sys.exit(0 if $PEAK < 64 else 1)" || FAILED=1
        kill -TERM "${ROLE_PID[$role]}" 2>/dev/null || true
    done
    for role in "${!ROLE_PID[@]}"; do wait "${ROLE_PID[$role]}" 2>/dev/null || true; done
    ACCEPTED=$((POSTED - REFUSED))
    CHECK="$layout: 302s served ${SERVED%.*}, clicks rolled up $CLICKS; sales accepted $ACCEPTED of $POSTED, conversions $CONVERSIONS, commissions $BOOKED (2 per sale)"
    if [ "$CLICKS" = "${SERVED%.*}" ] && [ "$CONVERSIONS" = "$ACCEPTED" ] && [ "$BOOKED" = "$((2 * ACCEPTED))" ]; then
        CHECK+=": every one counted and booked once"
    else
        CHECK+=": MISMATCH"; FAILED=1
    fi
    REPORT+="$CHECK"$'\n'
    REPORT+="$(grep -h '^soak:' "$WORK/$layout.sales"); redirects: $(awk '/^Requests\/sec/ {print $2}' "$WORK/$layout.wrk") /s"$'\n'
    # Why refused sales were refused (the first few), if any.
    REPORT+="$({ grep -h '^webhook_load:' "$WORK/$layout.sales.err" || true; } | sort | uniq -c | sort -rn | head -3)"$'\n\n'
done

cat <<EOF

soak ($(date -u +%F), $(nproc) cores, ${SOAK_SECONDS}s per layout, $REDIRECT_RATE redirects/s and $SALE_RATE sales/s offered, Redis AOF everysec)
layout role    idle MiB  plateau  peak   (resident memory; target: every role under 64 MiB)
$REPORT
EOF
exit "$FAILED"
