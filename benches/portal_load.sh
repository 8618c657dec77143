#!/usr/bin/env bash
# Portal pages of a partner with a year of data, server-side: seeds a year
# of roll-ups (365 days x 50 links), 7,300 booked sales with their
# commissions and ledger entries (approved, half of them paid out in 12
# monthly payouts), signs the partner in through the portal, then times its
# pages with wrk on a release build, beside GET /healthz.
#
#   benches/portal_load.sh            # DURATION=10 CONNS=1 by default
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
MITRA_DB_NAME=mitra_bench_portal ensure_services
command -v wrk >/dev/null 2>&1 || apt_install wrk
psql -q "${DATABASE_URL%/*}/postgres" -c "drop database if exists mitra_bench_portal with (force)" \
    -c "create database mitra_bench_portal" >/dev/null
PORT="${BENCH_PORT:-18384}"
BASE="http://127.0.0.1:$PORT"
ADMIN="bench-admin-token-0000000"
export MITRA_ADMIN_TOKEN="$ADMIN" MITRA_LINK_KEYS="1:bench-link-key-bench-link-key" \
    MITRA_LISTEN="127.0.0.1:$PORT" MITRA_REDIS_PREFIX="bench-portal:$$:" SQLX_OFFLINE=true
say "building the release binary"
cargo build --release --quiet --bin mitra
target/release/mitra serve --role api >/tmp/mitra-bench-portal.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fs "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

api() { curl -fsS -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' "$@"; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
PROGRAM=$(api -X POST "$BASE/v1/programs" -d '{"name":"Bench","currency":"EUR","landing_domains":["shop.example"],"default_url":"https://shop.example/","commission":{"sale":{"percent_bps":1000}}}' | json_field id)
PARTNER=$(api -X POST "$BASE/v1/partners" -d '{"name":"One","email":"one@example.com"}' | json_field id)
E=$(api -X POST "$BASE/v1/programs/$PROGRAM/enrollments" -d "{\"partner_id\":\"$PARTNER\"}" | json_field id)
api -X POST "$BASE/v1/enrollments/$E/accept" >/dev/null
AGREEMENT=$(api -X POST "$BASE/v1/programs/$PROGRAM/agreements" -d "{\"partners\":[{\"partner_id\":\"$PARTNER\",\"share_bps\":10000}]}" | json_field id)
for _ in $(seq 50); do api -X POST "$BASE/v1/links" -d "{\"agreement_id\":\"$AGREEMENT\"}" >/dev/null; done

say "seeding a year: roll-ups, 7,300 sales, commissions, ledger, 12 payouts"
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
select p.partner_id, c.link_id, c.day, c.program_id, c.conversions, c.revenue_minor, c.commission_minor
from conversion_days c cross join (select distinct partner_id from agreement_partners) p;
-- 20 sales a day for a year, each with its commission, booked and approved.
with l as (select id, program_id, agreement_id from links order by id limit 1),
s as (
    insert into conversions (program_id, idempotency_key, order_id, event, amount_minor, currency,
                             occurred_at, received_at, status, attributed_via, link_id, agreement_id,
                             agreement_version, processed_at)
    select l.program_id, 'order:sale:bench-' || n, 'bench-' || n, 'sale', 12500, 'EUR',
           now() - make_interval(mins => n * 72), now() - make_interval(mins => n * 72),
           'attributed', 'click', l.id, l.agreement_id, 1, now() - make_interval(mins => n * 72)
    from l, generate_series(1, 7300) n
    returning id, program_id, agreement_id, occurred_at)
insert into commissions (conversion_id, program_id, partner_id, agreement_id, agreement_version, rule,
                         base_minor, total_minor, share_bps, original_minor, amount_minor, currency,
                         status, approve_after, created_at, updated_at)
select s.id, s.program_id, ap.partner_id, s.agreement_id, 1,
       '{"event":"sale","rule":{"percent_bps":1000}}', 12500, 1250, 10000, 1250, 1250, 'EUR',
       'approved', s.occurred_at, s.occurred_at, s.occurred_at
from s join agreement_partners ap on ap.agreement_id = s.agreement_id;
insert into ledger_entries (commission_id, program_id, partner_id, currency, bucket, amount_minor, kind,
                            conversion_id, actor, created_at)
select c.id, c.program_id, c.partner_id, 'EUR', b.bucket, b.amount, b.kind, c.conversion_id, 'worker',
       c.created_at + b.later
from commissions c,
     (values ('pending', 1250, 'created', interval '0'),
             ('pending', -1250, 'approved', interval '1 minute'),
             ('approved', 1250, 'approved', interval '1 minute')) as b(bucket, amount, kind, later);
-- The older half paid, in one payout a month.
insert into payouts (program_id, min_amount_minor, actor, created_at)
select program_id, 1, 'bench', now() - make_interval(days => m * 30 + 185)
from (select distinct program_id from commissions) p, generate_series(0, 11) m;
update commissions c set status = 'paid', payout_id = (
    select id from payouts p where p.created_at >= c.created_at order by p.created_at limit 1)
where c.created_at < now() - interval '185 days';
insert into ledger_entries (commission_id, program_id, partner_id, currency, bucket, amount_minor, kind,
                            conversion_id, payout_id, actor, created_at)
select c.id, c.program_id, c.partner_id, 'EUR', b.bucket, b.amount, 'paid', c.conversion_id, c.payout_id,
       'bench', p.created_at
from commissions c join payouts p on p.id = c.payout_id,
     (values ('approved', -1250), ('paid', 1250)) as b(bucket, amount);
insert into payout_items (payout_id, partner_id, currency, amount_minor, commission_count)
select payout_id, partner_id, 'EUR', sum(amount_minor), count(*) from commissions
where payout_id is not null group by payout_id, partner_id;
vacuum analyze;
SQL

say "signing the partner in through the portal"
INVITE=$(api -X POST "$BASE/v1/partners/$PARTNER/users" -d '{"email":"one@example.com"}' | json_field invite_url)
WELCOME="$BASE/portal/welcome/${INVITE##*/}"
JAR=$(mktemp)
CSRF=$(curl -fsS -c "$JAR" -b "$JAR" "$WELCOME" | sed -n 's/.*name="csrf" value="\([0-9A-Za-z]*\)".*/\1/p' | head -1)
curl -fsS -o /dev/null -c "$JAR" -b "$JAR" --data-urlencode "csrf=$CSRF" \
    --data-urlencode "password=bench password 1" --data-urlencode "password2=bench password 1" "$WELCOME"
SESSION=$(awk '$6 == "mitra_session" {print $7}' "$JAR")
COOKIE="cookie: mitra_session=$SESSION"
for page in /portal/partner /portal/partner/commissions /portal/partner/statement /portal/partner/payouts; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "$COOKIE" "$BASE$page")
    [ "$code" = 200 ] || die "GET $page answered $code"
done
COMMISSIONS=$(curl -fs -H "$COOKIE" "$BASE/portal/partner/commissions" | grep -c 'data-commission=')
STATEMENT=$(curl -fs -H "$COOKIE" "$BASE/portal/partner/statement" | grep -c '<tr><td>')

run() { wrk -t1 -c"${CONNS:-1}" -d"${DURATION:-10}s" --latency "$@"; }
pct() { awk -v p="$1" '$1 == p {print $2}'; }
line() { printf '%-38s %8s   %-9s %s\n' "$1" "$(echo "$2" | awk '/^Requests\/sec/ {print $2}')" "$(echo "$2" | pct 50%)" "$(echo "$2" | pct 99%)"; }
time_pages() {
    H=$(run "$BASE/healthz")
    D=$(run -H "$COOKIE" "$BASE/portal/partner")
    C=$(run -H "$COOKIE" "$BASE/portal/partner/commissions")
    S=$(run -H "$COOKIE" "$BASE/portal/partner/statement")
    P=$(run -H "$COOKIE" "$BASE/portal/partner/payouts")
    cat <<OUT

$1
a partner with a year of data (18,250 roll-up rows, 7,300 commissions, 29,200 ledger entries),
${CONNS:-1} connection(s), release build, server-side (wrk on loopback):
                                          req/s   p50       p99
$(line "GET /healthz" "$H")
$(line "GET /portal/partner (dashboard)" "$D")
$(line "GET /portal/partner/commissions ($COMMISSIONS)" "$C")
$(line "GET /portal/partner/statement ($STATEMENT)" "$S")
$(line "GET /portal/partner/payouts" "$P")
OUT
}
say "timing, balances summed from the whole ledger (no checkpoint yet: the baseline)"
time_pages "without balance checkpoints"
say "taking balance checkpoints (daily over the year, as workers keep them)"
target/release/mitra checkpoint-balances
say "timing, balances from checkpoints"
time_pages "with balance checkpoints"
cat <<OUT
target: every page under 50 ms
OUT
