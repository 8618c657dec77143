#!/usr/bin/env bash
# Report latency over a year of daily rows: seeds 365 days of click and
# conversion roll-ups for 50 links of one program (two partners), then
# times GET /v1/reports for the whole year (program and partner scope)
# beside GET /healthz, with wrk on a release build.
#
#   benches/reports_load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
MITRA_DB_NAME=mitra_bench_reports ensure_services
command -v wrk >/dev/null 2>&1 || apt_install wrk
psql -q "${DATABASE_URL%/*}/postgres" -c "drop database if exists mitra_bench_reports with (force)" \
    -c "create database mitra_bench_reports" >/dev/null
PORT="${BENCH_PORT:-18383}"
BASE="http://127.0.0.1:$PORT"
ADMIN="bench-admin-token-0000000"
export MITRA_ADMIN_TOKEN="$ADMIN" MITRA_LINK_KEYS="1:bench-link-key-bench-link-key" \
    MITRA_LISTEN="127.0.0.1:$PORT" MITRA_REDIS_PREFIX="bench-reports:$$:" SQLX_OFFLINE=true
say "building the release binary"
cargo build --release --quiet
target/release/mitra serve --role api >/tmp/mitra-bench-reports.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fs "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

api() { curl -fsS -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' "$@"; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
CREATED=$(api -X POST "$BASE/v1/programs" -d '{"name":"Bench","currency":"EUR","landing_domains":["shop.example"],"default_url":"https://shop.example/","commission":{"sale":{"percent_bps":1000}}}')
PROGRAM=$(echo "$CREATED" | json_field id)
PROGRAM_KEY=$(echo "$CREATED" | json_field api_key)
PARTNER_JSON=$(api -X POST "$BASE/v1/partners" -d '{"name":"One","email":"one@example.com"}')
P1=$(echo "$PARTNER_JSON" | json_field id)
P1_KEY=$(echo "$PARTNER_JSON" | json_field api_key)
P2=$(api -X POST "$BASE/v1/partners" -d '{"name":"Two","email":"two@example.com"}' | json_field id)
for P in $P1 $P2; do  # each partner joins the program: invited, then accepted
    E=$(api -X POST "$BASE/v1/programs/$PROGRAM/enrollments" -d "{\"partner_id\":\"$P\"}" | json_field id)
    api -X POST "$BASE/v1/enrollments/$E/accept" >/dev/null
done
AGREEMENT=$(api -X POST "$BASE/v1/programs/$PROGRAM/agreements" -d "{\"partners\":[{\"partner_id\":\"$P1\",\"share_bps\":5000},{\"partner_id\":\"$P2\",\"share_bps\":5000}]}" | json_field id)
for _ in $(seq 50); do api -X POST "$BASE/v1/links" -d "{\"agreement_id\":\"$AGREEMENT\"}" >/dev/null; done

say "seeding 365 days x 50 links of roll-ups"
psql -q "$DATABASE_URL" <<'SQL'
insert into link_click_days (program_id, link_id, day, clicks, unique_clicks, bot_clicks)
select l.program_id, l.id, d::date, 1000 + (l.id * 7 + extract(doy from d))::int % 500, 800, 50
from links l, generate_series(current_date - 364, current_date, interval '1 day') d;
insert into partner_click_days (program_id, partner_id, link_id, day, clicks, unique_clicks, bot_clicks)
select c.program_id, p.partner_id, c.link_id, c.day, c.clicks, c.unique_clicks, c.bot_clicks
from link_click_days c cross join (select distinct partner_id from agreement_partners) p;
insert into conversion_days (program_id, link_id, day, conversions, revenue_minor, commission_minor)
select program_id, link_id, day, 20, 250000, 25000 from link_click_days;
insert into partner_conversion_days (partner_id, link_id, day, program_id, conversions, revenue_minor, commission_minor)
select p.partner_id, c.link_id, c.day, c.program_id, c.conversions, c.revenue_minor, c.commission_minor / 2
from conversion_days c cross join (select distinct partner_id from agreement_partners) p;
analyze;
SQL
FROM=$(date -u -d '364 days ago' +%F)
TO=$(date -u +%F)
ROWS=$(curl -fs -H "authorization: Bearer $PROGRAM_KEY" "$BASE/v1/reports?from=$FROM&to=$TO" | python3 -c "import json,sys; print(len(json.load(sys.stdin)['data']))")
run() { wrk -t1 -c"${CONNS:-1}" -d"${DURATION:-10}s" --latency "$@"; }
pct() { awk -v p="$1" '$1 == p {print $2}'; }
say "timing"
H=$(run "$BASE/healthz")
R=$(run -H "authorization: Bearer $PROGRAM_KEY" "$BASE/v1/reports?from=$FROM&to=$TO")
P=$(run -H "authorization: Bearer $P1_KEY" "$BASE/v1/reports?from=$FROM&to=$TO")
cat <<OUT

report of a year ($ROWS daily rows over 50 links, 18,250 roll-up rows per table), ${CONNS:-1} connection(s):
                               req/s   p50       p99
GET /healthz                $(printf '%8s' "$(echo "$H" | awk '/^Requests\/sec/ {print $2}')")   $(echo "$H" | pct 50%)   $(echo "$H" | pct 99%)
GET /v1/reports (program)   $(printf '%8s' "$(echo "$R" | awk '/^Requests\/sec/ {print $2}')")   $(echo "$R" | pct 50%)   $(echo "$R" | pct 99%)
GET /v1/reports (partner)   $(printf '%8s' "$(echo "$P" | awk '/^Requests\/sec/ {print $2}')")   $(echo "$P" | pct 50%)   $(echo "$P" | pct 99%)
target: a year of daily rows in under 100 ms
OUT
