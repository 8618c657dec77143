#!/usr/bin/env bash
# End-to-end load test of the money path against a release build: 20,000
# signed sales (valid click ids) posted concurrently, timed until every one
# is booked, beside a plain multi-row INSERT of as many rows into the same
# Postgres; then webhooks at a steady 1,000/s for tail latency, and the
# same again with nothing booking beside them (the tail's baseline).
#
#   benches/conversions_load.sh
#   LOAD_CONVERSIONS=50000 LOAD_CONNECTIONS=128 benches/conversions_load.sh
#   LOAD_RULES="flat tiered tiered flat" LOAD_PACED_SECONDS=0 benches/conversions_load.sh
#   BENCH_PORT=18383 BENCH_PG_PORT=18384 benches/conversions_load.sh
#   PG_STATS=1 benches/conversions_load.sh   # and where Postgres spends its time
#   MITRA_BIN=/tmp/mitra-before benches/conversions_load.sh   # a prebuilt binary (A/B)
#   LOAD_SHAPE=one benches/conversions_load.sh   # every role in one process
#   MITRA_WORKER_POLL_MS=20 benches/conversions_load.sh   # a faster idle poll (deployed: 500 ms)
#   LOAD_LATENCY_LOG=/tmp/latency benches/conversions_load.sh   # each paced webhook's send time
#       and latency in ms, a line each (the last paced run's: intake only, unless LOAD_BASELINE=0)
#
# mitra runs as deployed (deploy/docker/compose.yaml): an API process
# (`serve --role api`) takes the webhooks and a worker process (`serve
# --role worker`) books them. LOAD_SHAPE=one runs a single `serve` with
# every role instead, as the demo and a small install do.
#
# LOAD_RULES lists the programs to run, one after the other on the same
# server: `flat` (10% of sales, the default) or `tiered` (count tiers with
# re-rating, three category rates, two bonuses, and three lines per order,
# so every sale locks and updates its agreement's month). With several, it
# prints each run's booking rate against the first `flat` run's.
#
# Postgres runs as deployed: a private server with postgres:15's defaults
# (fsync and synchronous_commit on), started and removed by this script.
# PG_AS_DEPLOYED=0 uses the development server instead (fsync off), which
# flatters every figure.
#
# Everything shares this machine's cores (server, workers, Postgres, load
# generator): compare the ratio to the plain INSERT, not the absolute figures.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
PORT="${BENCH_PORT:-18282}"
PG_PORT="${BENCH_PG_PORT:-18283}"
if [ "${PG_AS_DEPLOYED:-1}" = 1 ]; then
    # Postgres as deployed (deploy/docker/compose.yaml runs postgres:15 with
    # its defaults: fsync, synchronous_commit and full_page_writes on), not
    # the development server, which trades durability for speed. A 2xx
    # means a commit that reached the disk, and the bench pays for it.
    ensure_services >/dev/null
    PG_BIN="$(pg_bin_dir)" || die "no PostgreSQL binaries"
    PG_DATA="$(mktemp -d /tmp/mitra-bench-pg.XXXXXX)"
    run_as=()
    [ "$(id -u)" -eq 0 ] && run_as=(runuser -u postgres --) && chown postgres "$PG_DATA"
    say "starting a private PostgreSQL as deployed (fsync on) on 127.0.0.1:$PG_PORT"
    "${run_as[@]}" "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    stats_opts=""
    [ "${PG_STATS:-0}" = 1 ] && stats_opts="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
    "${run_as[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/log" -w -t 60 start \
        -o "-h 127.0.0.1 -p $PG_PORT -k $PG_DATA -c max_connections=200 $stats_opts" >/dev/null
    stop_pg() { "${run_as[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast stop >/dev/null 2>&1 || true; rm -rf "$PG_DATA"; }
    [ "$("$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc 'show fsync')" = on ] || die "fsync is off"
    export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/mitra_bench_conversions"
    export LOAD_PG_PRIVATE=1  # the load generator may count the whole server's CPU
else
    stop_pg() { :; }
    MITRA_DB_NAME=mitra_bench_conversions ensure_services
fi
psql -q "${DATABASE_URL%/*}/postgres" \
    -c "drop database if exists mitra_bench_conversions with (force)" \
    -c "create database mitra_bench_conversions" \
    -c "alter database mitra_bench_conversions set log_min_duration_statement = ${LOG_SLOWER_THAN_MS:--1}" >/dev/null
[ "${PG_STATS:-0}" = 1 ] && psql -q "$DATABASE_URL" -c "create extension pg_stat_statements" >/dev/null
BASE="http://127.0.0.1:$PORT"
ADMIN="bench-admin-token-0000000"
export MITRA_ADMIN_TOKEN="$ADMIN" MITRA_LINK_KEYS="1:bench-link-key-bench-link-key" \
    MITRA_LISTEN="127.0.0.1:$PORT" MITRA_REDIS_PREFIX="bench-conv:$$:" RUST_LOG=warn \
    MITRA_WORKER_POLL_MS="${MITRA_WORKER_POLL_MS:-500}" SQLX_OFFLINE=true

# An A/B runs an earlier build (copied aside) against this one, alternating.
MITRA_BIN="${MITRA_BIN:-target/release/mitra}"
say "building the release binary and the load generator"
cargo build --release --quiet
[ -x "$MITRA_BIN" ] || die "MITRA_BIN: $MITRA_BIN is not an executable"
cargo bench --bench webhook_load --no-run --quiet 2>/dev/null

WORKER_PORT="${BENCH_WORKER_PORT:-$((PORT + 10))}"
WORKER=""
wait_ready() { # url
    for _ in $(seq 100); do curl -fs "$1/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -fs "$1/readyz" >/dev/null || { cat /tmp/mitra-bench-conversions.log; die "mitra did not become ready at $1"; }
}
start_server() { # [serve options]: starts mitra, sets SERVER, waits until ready
    "$MITRA_BIN" serve "$@" >>/tmp/mitra-bench-conversions.log 2>&1 &
    SERVER=$!
    export LOAD_SERVER_PID="$SERVER"  # the load generator reads its CPU time
    wait_ready "$BASE"
}
start_worker() { # the booking process beside the API, as deployed
    MITRA_LISTEN="127.0.0.1:$WORKER_PORT" "$MITRA_BIN" serve --role worker >>/tmp/mitra-bench-conversions.log 2>&1 &
    WORKER=$!
    export LOAD_SERVER_PID="$SERVER,$WORKER"  # mitra's CPU is both processes'
    wait_ready "http://127.0.0.1:$WORKER_PORT"
}
stop_worker() {
    [ -n "$WORKER" ] || return 0
    kill "$WORKER" 2>/dev/null || true
    wait "$WORKER" 2>/dev/null || true
    WORKER=""
}
: >/tmp/mitra-bench-conversions.log
trap 'kill $SERVER $WORKER 2>/dev/null || true; stop_pg' EXIT
case "${LOAD_SHAPE:-deployed}" in
    deployed) start_server --role api; start_worker ;;
    one) start_server ;;
    *) die "LOAD_SHAPE: expected deployed or one, not ${LOAD_SHAPE}" ;;
esac
say "mitra: ${LOAD_SHAPE:-deployed} (pids $LOAD_SERVER_PID)"

api() { curl -fsS -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' "$@"; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
FLAT='{"sale":{"percent_bps":1000}}'
TIERED='{"sale":{"percent_bps":1000,
  "tiers":{"by":"count","rerate":true,"steps":[{"from":5000,"percent_bps":1200},{"from":12000,"percent_bps":1500}]},
  "categories":{"books":{"percent_bps":500},"gift-cards":{"flat_minor":50},"electronics":{"percent_bps":300}},
  "bonuses":[{"by":"count","at":10000,"flat_minor":5000},{"by":"revenue","at":100000000,"flat_minor":20000}]}}'
# A program with two partners, an agreement and a link, under $COMMISSION.
setup_program() { # name
    CREATED=$(api -X POST "$BASE/v1/programs" -d "{\"name\":\"$1\",\"currency\":\"EUR\",\"landing_domains\":[\"shop.example\"],\"default_url\":\"https://shop.example/\",\"hold_days\":30,\"commission\":$COMMISSION}")
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
}

# A deployment has history: its tables are large and analyzed, and the
# plans its connections cache were made for them. A database born with the
# run is neither: a statement first prepared against an empty table keeps a
# generic plan that scans the whole table (the attribution's fraud-signal
# lookup did, 0.3 ms per sale and growing) until autovacuum's first ANALYZE,
# a minute or more into the run. So the measured runs follow a warm-up
# (LOAD_WARMUP sales, booked, then ANALYZE, which also makes every cached
# plan be planned again); LOAD_WARMUP=0 measures the newborn database.
WARMUP="${LOAD_WARMUP:-5000}"
if [ "$WARMUP" -gt 0 ]; then
    say "warming up: $WARMUP sales booked, then ANALYZE"
    COMMISSION="$FLAT" setup_program "Warm-up"
    LOAD_BASE="$BASE" LOAD_PROGRAM="$PROGRAM" LOAD_SECRET="$SECRET" LOAD_LINK="$LINK" \
        LOAD_RUN_ID="warm$$-$RANDOM" LOAD_CONVERSIONS="$WARMUP" LOAD_PACED_SECONDS=0 \
        cargo bench --bench webhook_load --quiet >/dev/null 2>&1 || die "the warm-up failed"
    psql -q "$DATABASE_URL" -c "analyze" >/dev/null
    if [ "${PG_AS_DEPLOYED:-1}" = 1 ] && [ "${LOAD_WAL_HISTORY:-1}" = 1 ]; then
        # A server with history also has WAL segments to reuse: a checkpoint
        # renames old ones for the WAL ahead. A new server has none, so every
        # 16 MB of WAL in the run would first write a new segment full of
        # zeros and flush it, with every commit waiting behind it (a booked
        # sale writes about 5.8 KB of WAL: at 1,000/s, every three seconds).
        # 256 MB of WAL written and checkpointed leaves the run segments to
        # reuse, as in a deployment that has run for a while. The paced
        # webhooks' p99 with nothing booking, 2 pairs alternating: 8.4 and
        # 87 ms without, 6.6 and 5.9 ms with. LOAD_WAL_HISTORY=0 skips it.
        psql -q "$DATABASE_URL" \
            -c "create table wal_history (g int, pad text)" \
            -c "alter table wal_history alter pad set storage plain" \
            -c "insert into wal_history select g, repeat('x', 2000) from generate_series(1, 128000) g" \
            -c "drop table wal_history" -c "checkpoint" -c "checkpoint" >/dev/null
    fi
    [ "${PG_STATS:-0}" = 1 ] && psql -q "$DATABASE_URL" -c "select pg_stat_statements_reset()" >/dev/null
fi

sales_stored() { psql -XtAq "$DATABASE_URL" -c "select count(*) from conversions where event = 'sale'"; }
BASELINE=""
for RULES in ${LOAD_RULES:-flat}; do
    case "$RULES" in
        flat) COMMISSION="$FLAT" ITEMS="" ;;
        tiered) COMMISSION="$TIERED" ITEMS=1 ;;
        *) die "LOAD_RULES: unknown rules $RULES (expected flat or tiered)" ;;
    esac
    setup_program "Bench $RULES"

    say "posting conversions ($RULES rules)"
    WAL_START=$(psql -XtAq "$DATABASE_URL" -c "select pg_current_wal_insert_lsn()")
    # The sales of this span: the burst's and the paced webhooks'.
    SALES_START=$(sales_stored)
    LOAD_BASE="$BASE" LOAD_PROGRAM="$PROGRAM" LOAD_SECRET="$SECRET" LOAD_LINK="$LINK" \
        LOAD_RUN_ID="run$$-$RULES-$RANDOM" LOAD_ITEMS="$ITEMS" \
        cargo bench --bench webhook_load --quiet 2> >(grep '^webhook_load:' >&2) | tee /tmp/mitra-bench-conversions.out
    RATE=$(sed -n 's/^RESULT booked_per_s=\([0-9]*\).*/\1/p' /tmp/mitra-bench-conversions.out)
    if [ "$RULES" = flat ] && [ -z "$BASELINE" ]; then BASELINE="$RATE"; fi
    if [ -n "$BASELINE" ]; then
        echo "RULES $RULES booked_per_s=$RATE vs flat $BASELINE: $(python3 -c "print(f'{$RATE / $BASELINE:.0%}')")"
    fi
    RATES="${RATES:-} $RULES=$RATE"
    WAL_END=$(psql -XtAq "$DATABASE_URL" -c "select pg_current_wal_insert_lsn()")
    WAL_BYTES=$(psql -XtAq "$DATABASE_URL" -c "select pg_wal_lsn_diff('$WAL_END', '$WAL_START')::bigint")
    SALES=$(( $(sales_stored) - SALES_START ))
    echo "WAL written while booking: $((WAL_BYTES / 1048576)) MiB, $((WAL_BYTES / (SALES > 0 ? SALES : 1))) bytes per booked sale ($SALES sales)"
    if [ "${PG_STATS:-0}" = 1 ] && [ "${PG_AS_DEPLOYED:-1}" = 1 ]; then
        # What that WAL is, by kind of record: each kind's records and the
        # full-page images they carried (the first change of a page after a
        # checkpoint writes the whole page).
        psql -XtAq "$DATABASE_URL" -c "select pg_switch_wal()" >/dev/null
        "$PG_BIN/pg_waldump" --stats=record -p "$PG_DATA/pg_wal" -s "$WAL_START" -e "$WAL_END" 2>/dev/null \
            | python3 -c '
import re, sys
rows = []
for line in sys.stdin:
    m = re.match(r"(\S+/\S+)\s+(\d+)\s+\(\s*[\d.]+\)\s+(\d+)\s+\(\s*[\d.]+\)\s+(\d+)\s+\(\s*[\d.]+\)\s+(\d+)", line.strip())
    if m:
        rows.append((int(m[5]), m[1], int(m[2]), int(m[3]), int(m[4])))
total = sum(r[0] for r in rows) or 1
print("%-34s %9s %11s %11s %6s" % ("WAL by record kind", "records", "record B", "page img B", "share"))
for size, kind, n, rec, fpi in sorted(rows, reverse=True)[:14]:
    print(f"{kind:34} {n:9} {rec:11} {fpi:11} {size / total:6.1%}")
'
        # Which relations those records changed, per booked sale: a row
        # inserted or updated is one heap record plus one per index it enters.
        psql -XtAq "$DATABASE_URL" -F ' ' \
            -c "select relfilenode, relname from pg_class where relfilenode <> 0" >/tmp/mitra-bench-relnames
        "$PG_BIN/pg_waldump" -p "$PG_DATA/pg_wal" -s "$WAL_START" -e "$WAL_END" 2>/dev/null \
            | python3 -c '
import re, sys
names = dict(line.split() for line in open("/tmp/mitra-bench-relnames") if line.strip())
sales = int(sys.argv[1])
counts = {}
for line in sys.stdin:
    m = re.search(r"desc: (\S+).*?blkref #0: rel \d+/\d+/(\d+)", line)
    r = re.match(r"rmgr: (\S+)", line)
    if m and r and r[1] in ("Heap", "Heap2", "Btree"):
        key = (names.get(m[2], m[2]), r[1] + "/" + m[1])
        counts[key] = counts.get(key, 0) + 1
print("%-44s %-22s %9s" % ("records by relation", "kind", "per sale"))
for (rel, kind), n in sorted(counts.items(), key=lambda kv: -kv[1])[:30]:
    print("%-44s %-22s %9.2f" % (rel, kind, n / sales))
' "$((SALES > 0 ? SALES : 1))"
    fi
done
if [ "$(echo "$RATES" | tr ' ' '\n' | cut -d= -f1 | sort -u | grep -c .)" -gt 1 ]; then
    # Drift on a shared machine moves every run; the mean of each kind's
    # runs (ordered flat tiered tiered flat, drift cancels) is the figure.
    python3 - $RATES <<'PY'
import sys
runs = {}
for arg in sys.argv[1:]:
    kind, rate = arg.split("=")
    runs.setdefault(kind, []).append(int(rate))
flat = sum(runs["flat"]) / len(runs["flat"])
for kind, rates in runs.items():
    mean = sum(rates) / len(rates)
    print(f"MEAN {kind}: {mean:.0f} booked/s over {len(rates)} runs {rates}: {mean / flat:.0%} of flat")
PY
fi

# Where the database's time went, statement by statement (triggers'
# statements included): the profile of the money path, then (after a
# reset) of the intake alone.
statement_profile() { # title
    [ "${PG_STATS:-0}" = 1 ] || return 0
    say "Postgres time by statement, $1 (pg_stat_statements, top 25)"
    psql -X "$DATABASE_URL" -P pager=off -c "
        select round(total_exec_time::numeric, 0) as total_ms, calls,
               round((total_exec_time / greatest(calls, 1))::numeric, 3) as mean_ms, rows,
               regexp_replace(left(query, 110), '\s+', ' ', 'g') as query
        from pg_stat_statements order by total_exec_time desc limit 25"
    psql -Xq "$DATABASE_URL" -c "select pg_stat_statements_reset()" >/dev/null
}
statement_profile "burst and paced webhooks with booking"

# The tail's baseline, measured in the same run: the same paced webhooks
# with nothing booking beside them (the server restarted as `--role api`),
# so a p99 above shows what booking on the same cores adds. LOAD_BASELINE=0
# skips it.
if [ "${LOAD_PACED_SECONDS:-10}" -gt 0 ] && [ "${LOAD_BASELINE:-1}" = 1 ]; then
    say "baseline: the same paced webhooks with nothing booking (--role api alone)"
    stop_worker
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    start_server --role api
    LOAD_BASE="$BASE" LOAD_PROGRAM="$PROGRAM" LOAD_SECRET="$SECRET" LOAD_LINK="$LINK" \
        LOAD_RUN_ID="base$$-$RANDOM" LOAD_CONVERSIONS=0 \
        cargo bench --bench webhook_load --quiet 2> >(grep '^webhook_load:' >&2) | sed -n 's/^paced:/paced, intake only (baseline):/p'
    statement_profile "paced webhooks, intake only"
fi
