#!/usr/bin/env bash
# End-to-end load test of the money path against a release build: 20,000
# signed sales (valid click ids) posted concurrently, timed until every one
# is booked, beside a plain multi-row INSERT of as many rows into the same
# Postgres; then webhooks at a steady 1,000/s for tail latency.
#
#   benches/conversions_load.sh
#   LOAD_CONVERSIONS=50000 LOAD_CONNECTIONS=128 benches/conversions_load.sh
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
CREATED=$(api -X POST "$BASE/v1/programs" -d '{"name":"Bench","currency":"EUR","landing_domains":["shop.example"],"default_url":"https://shop.example/","hold_days":30,"commission":{"sale":{"percent_bps":1000}}}')
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

say "posting conversions"
LOAD_BASE="$BASE" LOAD_PROGRAM="$PROGRAM" LOAD_SECRET="$SECRET" LOAD_LINK="$LINK" LOAD_RUN_ID="run$$" \
    cargo bench --bench webhook_load --quiet 2>/dev/null | tee /tmp/mitra-bench-conversions.out
