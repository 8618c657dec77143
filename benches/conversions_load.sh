#!/usr/bin/env bash
# End-to-end load test of the money path against a release build: 20,000
# signed sales (valid click ids) posted concurrently, timed until every one
# is booked, beside a plain multi-row INSERT of as many rows into the same
# Postgres; then webhooks at a steady 1,000/s for tail latency.
#
#   benches/conversions_load.sh
#   LOAD_CONVERSIONS=50000 LOAD_CONNECTIONS=128 benches/conversions_load.sh
#   LOAD_RULES="flat tiered flat tiered" LOAD_PACED_SECONDS=0 benches/conversions_load.sh
#
# LOAD_RULES lists the programs to run, one after the other on the same
# server: `flat` (10% of sales, the default) or `tiered` (count tiers with
# re-rating, three category rates, two bonuses, and three lines per order,
# so every sale locks and updates its agreement's month). With several, it
# prints each run's booking rate against the first `flat` run's.
#
# Everything shares this machine's cores (server, workers, Postgres, load
# generator): compare the ratio to the plain INSERT, not the absolute figures.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
MITRA_DB_NAME=mitra_bench_conversions ensure_services
psql -q "${DATABASE_URL%/*}/postgres" \
    -c "drop database if exists mitra_bench_conversions with (force)" \
    -c "create database mitra_bench_conversions" \
    -c "alter database mitra_bench_conversions set log_min_duration_statement = ${LOG_SLOWER_THAN_MS:--1}" >/dev/null
PORT="${BENCH_PORT:-18282}"
BASE="http://127.0.0.1:$PORT"
ADMIN="bench-admin-token-0000000"
export MITRA_ADMIN_TOKEN="$ADMIN" MITRA_LINK_KEYS="1:bench-link-key-bench-link-key" \
    MITRA_LISTEN="127.0.0.1:$PORT" MITRA_REDIS_PREFIX="bench-conv:$$:" RUST_LOG=warn \
    MITRA_WORKER_POLL_MS=20 SQLX_OFFLINE=true

say "building the release binary and the load generator"
cargo build --release --quiet
cargo bench --bench webhook_load --no-run --quiet 2>/dev/null

target/release/mitra serve >/tmp/mitra-bench-conversions.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fs "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$BASE/readyz" >/dev/null || { cat /tmp/mitra-bench-conversions.log; die "the server did not become ready"; }

api() { curl -fsS -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' "$@"; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
FLAT='{"sale":{"percent_bps":1000}}'
TIERED='{"sale":{"percent_bps":1000,
  "tiers":{"by":"count","rerate":true,"steps":[{"from":5000,"percent_bps":1200},{"from":12000,"percent_bps":1500}]},
  "categories":{"books":{"percent_bps":500},"gift-cards":{"flat_minor":50},"electronics":{"percent_bps":300}},
  "bonuses":[{"by":"count","at":10000,"flat_minor":5000},{"by":"revenue","at":100000000,"flat_minor":20000}]}}'
BASELINE=""
for RULES in ${LOAD_RULES:-flat}; do
    case "$RULES" in
        flat) COMMISSION="$FLAT" ITEMS="" ;;
        tiered) COMMISSION="$TIERED" ITEMS=1 ;;
        *) die "LOAD_RULES: unknown rules $RULES (expected flat or tiered)" ;;
    esac
    CREATED=$(api -X POST "$BASE/v1/programs" -d "{\"name\":\"Bench $RULES\",\"currency\":\"EUR\",\"landing_domains\":[\"shop.example\"],\"default_url\":\"https://shop.example/\",\"hold_days\":30,\"commission\":$COMMISSION}")
    PROGRAM=$(echo "$CREATED" | json_field id)
    SECRET=$(echo "$CREATED" | json_field webhook_secret)
    P1=$(api -X POST "$BASE/v1/partners" -d '{"name":"Bench One","email":"one@example.com"}' | json_field id)
    P2=$(api -X POST "$BASE/v1/partners" -d '{"name":"Bench Two","email":"two@example.com"}' | json_field id)
    for P in $P1 $P2; do  # each partner joins the program: invited, then accepted
        E=$(api -X POST "$BASE/v1/programs/$PROGRAM/enrollments" -d "{\"partner_id\":\"$P\"}" | json_field id)
        api -X POST "$BASE/v1/enrollments/$E/accept" >/dev/null
    done
    AGREEMENT=$(api -X POST "$BASE/v1/programs/$PROGRAM/agreements" -d "{\"partners\":[{\"partner_id\":\"$P1\",\"share_bps\":3333},{\"partner_id\":\"$P2\",\"share_bps\":6667}]}" | json_field id)
    LINK=$(api -X POST "$BASE/v1/links" -d "{\"agreement_id\":\"$AGREEMENT\"}" | json_field id)

    say "posting conversions ($RULES rules)"
    LOAD_BASE="$BASE" LOAD_PROGRAM="$PROGRAM" LOAD_SECRET="$SECRET" LOAD_LINK="$LINK" \
        LOAD_RUN_ID="run$$-$RULES-$RANDOM" LOAD_ITEMS="$ITEMS" \
        cargo bench --bench webhook_load --quiet 2>/dev/null | tee /tmp/mitra-bench-conversions.out
    RATE=$(sed -n 's/^RESULT booked_per_s=\([0-9]*\).*/\1/p' /tmp/mitra-bench-conversions.out)
    if [ "$RULES" = flat ] && [ -z "$BASELINE" ]; then BASELINE="$RATE"; fi
    if [ -n "$BASELINE" ]; then
        echo "RULES $RULES booked_per_s=$RATE vs flat $BASELINE: $(python3 -c "print(f'{$RATE / $BASELINE:.0%}')")"
    fi
done
