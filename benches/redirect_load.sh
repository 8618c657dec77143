#!/usr/bin/env bash
# Load test of the redirect against a release build, with Redis persisting
# as deployed (AOF, fsync every second, as in deploy/docker/compose.yaml):
#
# 1. GET /l/{code} beside two yardsticks on the same core in the same run:
#    mitra's own GET /healthz, and a bare actix-web handler answering the
#    same 302 and nothing else (examples/bare_redirect.rs), the most an
#    actix-web redirect could serve here;
# 2. the redirect at half its peak rate, for tail latency: paced by wrk, and
#    as independent (Poisson) arrivals timed from when each was due
#    (benches/open_loop.rs), each beside the bare 302 at the same rate;
# 3. the server's peak RSS, Redis's CPU per click, and a count showing every
#    302 served produced exactly one click event;
# 4. Redis's memory per queued click, from a last short run whose events are
#    left in the stream.
# As in a deployment, the stream is consumed while it fills: a stand-in for
# the click worker reads and trims it, in pages the size the worker reads,
# from the load generator's core during the throughput runs and at idle
# priority on the servers' core during the latency runs (DRAIN=0 leaves every
# event in Redis instead).
#
#   benches/redirect_load.sh                 # 10 s runs, 64 connections, 2 rounds
#   DURATION=30 CONNS=128 ROUNDS=3 benches/redirect_load.sh
#   REDIRECT_LATENCY_LOG=/tmp/latency benches/redirect_load.sh   # the Poisson redirect run's
#       requests, a line each: due time and latency in ms (to tell a stall from scattered slow ones)
#
# The servers and Redis run pinned to core 0 and wrk to core 1, so the two
# do not fight over a core; on a shared machine compare the ratios, not the
# absolute figures. Each round measures the three back to back, and counts
# the CPU time each run cost the server (and Redis): requests per CPU-second
# are steadier than requests per second when other jobs share the cores.
# (Real-time priority does not help on a shared machine: the kernel's
# network work for loopback then starves and latency gets worse, not better.)
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
ROUNDS="${ROUNDS:-2}"
PORT="${BENCH_PORT:-18181}"
BARE_PORT="${BENCH_BARE_PORT:-18180}"
REDIS_PORT="${BENCH_REDIS_PORT:-18179}"
BASE="http://127.0.0.1:$PORT"
BARE="http://127.0.0.1:$BARE_PORT"
PREFIX="bench:$$:"
ADMIN="bench-admin-token-0000000"
SERVER_CORE="${SERVER_CORE:-0}"
# REDIS_CORE=1 moves Redis to the load generator's core: a diagnostic of what
# sharing the server's core costs (not the measured layout).
REDIS_CORE="${REDIS_CORE:-$SERVER_CORE}"
CLIENT_CORE="${CLIENT_CORE:-1}"
WORK="$(mktemp -d /tmp/mitra-redirect-bench.XXXXXX)"


say "building the release binary and the bare handler"
SQLX_OFFLINE=true cargo build --release --quiet --bin mitra --example bare_redirect --example click_stream_stats
OPEN_LOOP_BIN=$(bench_executable open_loop)
[ -x "$OPEN_LOOP_BIN" ] || die "no open-loop load generator (cargo bench --bench open_loop --no-run)"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# Redis as deployed: AOF with fsync every second, on the servers' core.
say "starting Redis with AOF (appendfsync everysec) on 127.0.0.1:$REDIS_PORT"
taskset -c "$REDIS_CORE" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK" "${REDIS_AS_DEPLOYED[@]}" \
    --save '' >"$WORK/redis.log" 2>&1 &
REDIS=$!
PIDS+=("$REDIS")
redis_cli() { redis-cli -p "$REDIS_PORT" "$@"; }
for _ in $(seq 50); do redis_cli ping >/dev/null 2>&1 && break; sleep 0.1; done
[ "$(redis_cli config get appendfsync | tail -1)" = everysec ] || die "Redis is not persisting as deployed"

export MITRA_ADMIN_TOKEN="$ADMIN" MITRA_LINK_KEYS="1:bench-link-key-bench-link-key" \
    MITRA_LISTEN="127.0.0.1:$PORT" MITRA_REDIS_PREFIX="$PREFIX" MITRA_HTTP_WORKERS=1 \
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT" RUST_LOG="${RUST_LOG:-info}" SQLX_OFFLINE=true
taskset -c "$SERVER_CORE" target/release/mitra serve --role api >"$WORK/mitra.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
BARE_LISTEN="127.0.0.1:$BARE_PORT" BARE_WORKERS=1 taskset -c "$SERVER_CORE" \
    target/release/examples/bare_redirect >"$WORK/bare.log" 2>&1 &
BARE_PID=$!
PIDS+=("$BARE_PID")
for _ in $(seq 100); do curl -fs "$BASE/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$BASE/readyz" >/dev/null || { cat "$WORK/mitra.log"; die "the server did not become ready"; }
for _ in $(seq 50); do curl -fs -o /dev/null "$BARE/l/x" 2>/dev/null && break; sleep 0.1; done

api() { curl -fsS -H "authorization: Bearer $ADMIN" -H 'content-type: application/json' "$@"; }
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
PROGRAM=$(api -X POST "$BASE/v1/programs" -d '{"name":"Bench","currency":"EUR","landing_domains":["shop.example"],"default_url":"https://shop.example/","commission":{"sale":{"percent_bps":1000}}}' | json_field id)
PARTNER=$(api -X POST "$BASE/v1/partners" -d '{"name":"Bench Partner","email":"bench@example.com"}' | json_field id)
for P in $PARTNER; do  # each partner joins the program: invited, then accepted
    E=$(api -X POST "$BASE/v1/programs/$PROGRAM/enrollments" -d "{\"partner_id\":\"$P\"}" | json_field id)
    api -X POST "$BASE/v1/enrollments/$E/accept" >/dev/null
done
AGREEMENT=$(api -X POST "$BASE/v1/programs/$PROGRAM/agreements" -d "{\"partners\":[{\"partner_id\":\"$PARTNER\",\"share_bps\":10000}]}" | json_field id)
CODE=$(api -X POST "$BASE/v1/links" -d "{\"agreement_id\":\"$AGREEMENT\",\"destination_url\":\"https://shop.example/p?x=1\",\"sub_ids\":{\"sub1\":\"bench\"}}" | json_field code)
# The yardstick answers a Location exactly as long as mitra's.
MITRA_LOCATION=$(curl -sS -o /dev/null -w '%{redirect_url}' "$BASE/l/$CODE")
BARE_LOCATION=$(curl -sS -o /dev/null -w '%{redirect_url}' "$BARE/l/$CODE")
[ "${#MITRA_LOCATION}" = "${#BARE_LOCATION}" ] \
    || die "the bare handler's Location (${#BARE_LOCATION}) is not as long as mitra's (${#MITRA_LOCATION})"

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
count_of() { # line key: a number from a key=value line (click_stream_stats, open_loop; 0 if absent)
    echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {s = $2} END {print s + 0}'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)

# The click worker's part, as deployed: the stream is read and trimmed as it
# fills (examples/click_stream_stats --follow, on the load generator's core),
# so Redis holds what a deployment holds. Without it (DRAIN=0) Redis keeps
# every event of the run, and each AOF rewrite forks a copy of an ever larger
# dataset onto the server's core: a cost no deployment pays.
DRAIN="${DRAIN:-1}"
if [ "$DRAIN" = 1 ]; then
    # Niced: it must not slow wrk, which measures; it catches up between runs.
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT" MITRA_REDIS_PREFIX="$PREFIX" taskset -c "$CLIENT_CORE" \
        nice -n 19 target/release/examples/click_stream_stats --follow >"$WORK/drained.txt" &
    DRAINER=$!
    PIDS+=("$DRAINER")
fi

say "warming up"
DURATION=2 run_wrk "$BASE/l/$CODE" 8 >/dev/null
DURATION=2 run_wrk "$BARE/l/$CODE" 8 >/dev/null
ROWS=""
SUM_HEALTH=0 SUM_BARE=0 SUM_REDIRECT=0 REDIS_TICKS=0 REDIRECTS_TIMED=0
# CPU time each run cost the server (and Redis), beside wall-clock rates: on
# a machine other jobs share, requests per CPU-second are the steadier yardstick.
CPU_HEALTH=0 CPU_BARE=0 CPU_REDIRECT=0
for round in $(seq "$ROUNDS"); do
    say "round $round of $ROUNDS: /healthz, bare 302, /l/{code}; $CONNS connections, ${DURATION}s each"
    t0=$(( $(cpu_ticks "$SERVER") + $(cpu_ticks "$REDIS") ))
    HEALTH=$(run_wrk "$BASE/healthz" "$CONNS")
    t1=$(( $(cpu_ticks "$SERVER") + $(cpu_ticks "$REDIS") ))
    b0=$(cpu_ticks "$BARE_PID")
    BARE_OUT=$(run_wrk "$BARE/l/$CODE" "$CONNS")
    b1=$(cpu_ticks "$BARE_PID")
    before=$(cpu_ticks "$REDIS")
    r0=$(( $(cpu_ticks "$SERVER") + before ))
    REDIRECT=$(run_wrk "$BASE/l/$CODE" "$CONNS")
    after=$(cpu_ticks "$REDIS")
    r1=$(( $(cpu_ticks "$SERVER") + after ))
    REDIS_TICKS=$((REDIS_TICKS + after - before))
    CPU_HEALTH=$((CPU_HEALTH + t1 - t0)) CPU_BARE=$((CPU_BARE + b1 - b0)) CPU_REDIRECT=$((CPU_REDIRECT + r1 - r0))
    h=$(echo "$HEALTH" | rps) b=$(echo "$BARE_OUT" | rps) r=$(echo "$REDIRECT" | rps)
    REDIRECTS_TIMED=$(python3 -c "print(int($REDIRECTS_TIMED + $r * $DURATION))")
    SUM_HEALTH=$(python3 -c "print($SUM_HEALTH + $h)")
    SUM_BARE=$(python3 -c "print($SUM_BARE + $b)")
    SUM_REDIRECT=$(python3 -c "print($SUM_REDIRECT + $r)")
    per_cpu() { python3 -c "print(f'{$1 * $DURATION / max(1, $2) * $CLK_TCK:.0f}')"; }
    ROWS+=$(printf '%-7s %9.0f %9.0f %9.0f   %5.0f%%  %5.0f%%   %s / %s ms   per CPU-s: %s %s %s\n' "$round" "$h" "$b" "$r" \
        "$(python3 -c "print($r / $h * 100)")" "$(python3 -c "print($r / $b * 100)")" \
        "$(to_ms "$(echo "$REDIRECT" | pct 50%)")" "$(to_ms "$(echo "$REDIRECT" | pct 99%)")" \
        "$(per_cpu "$h" $((t1 - t0)))" "$(per_cpu "$b" $((b1 - b0)))" "$(per_cpu "$r" $((r1 - r0)))")$'\n'
done
REDIRECT_RPS=$(python3 -c "print($SUM_REDIRECT / $ROUNDS)")

# From here on the load generator times latencies, and the Poisson one spins
# on its core: a stand-in worker sharing that core would delay its sends
# (by 0.7-1.1 ms at the 99th percentile, measured) and charge that to the
# server. The stand-in stands for a worker on another machine, so it moves to
# the servers' core at idle priority (SCHED_IDLE): it runs only when they
# would idle, yields to them at once, and the Redis work it asks for lands on
# Redis as it would in a deployment.
if [ "$DRAIN" = 1 ]; then
    taskset -a -p -c "$SERVER_CORE" "$DRAINER" >/dev/null
    chrt -a --idle -p 0 "$DRAINER"
fi

# Half the peak rate: connections that each wait 2 ms after every answer.
# A short calibration run tells how many such connections make half the peak.
HALF=$(python3 -c "print(int(float('$REDIRECT_RPS') / 2))")
PACED_CONNS=$(python3 -c "import math; print(max(1, math.ceil($HALF * 2 / 1000)))")
CALIBRATION=$(DURATION=3 WRK_DELAY_MS=2 run_wrk "$BASE/l/$CODE" "$PACED_CONNS" -s benches/paced.lua | rps)
PACED_CONNS=$(python3 -c "import math; print(max(1, round($PACED_CONNS * $HALF / float('$CALIBRATION'))))")
say "GET /l/{code} at about $HALF requests/s ($PACED_CONNS paced connections)"
PACED=$(WRK_DELAY_MS=2 run_wrk "$BASE/l/$CODE" "$PACED_CONNS" -s benches/paced.lua)
PACED_RPS=$(echo "$PACED" | rps)
PACED_P99=$(to_ms "$(echo "$PACED" | pct 99%)")
# The baseline for the tail: the bare 302 paced the same way, on the same
# core, so what the machine's scheduler adds shows apart from mitra's own.
PACED_BARE=$(WRK_DELAY_MS=2 run_wrk "$BARE/l/$CODE" "$PACED_CONNS" -s benches/paced.lua)
PACED_BARE_RPS=$(echo "$PACED_BARE" | rps)
PACED_BARE_P99=$(to_ms "$(echo "$PACED_BARE" | pct 99%)")
# And mitra's own /healthz at that rate: a tail there is the process's
# (runtime, background tasks), not the redirect's.
PACED_HEALTH=$(WRK_DELAY_MS=2 run_wrk "$BASE/healthz" "$PACED_CONNS" -s benches/paced.lua)
PACED_HEALTH_P99=$(to_ms "$(echo "$PACED_HEALTH" | pct 99%)")
# The same half rate as independent arrivals (Poisson), each request timed
# from when it was due (benches/open_loop.rs): wrk's paced connections fire
# together on its 1 ms timer, and the tail above is partly the drain time of
# those bursts, the bare handler's included. Same three targets, same core.
#
# While each runs, the switches on the servers' core are traced (perf,
# sched:sched_switch) and benches/core_stalls.py sums the slices of 1 ms or
# more in which the core was given to processes other than the bench's own:
# a request due then waits for the whole slice and the queue behind it. On a
# shared machine these make much of the p99 (CORE_STALLS=0 skips it).
STALLS=0
if [ "${CORE_STALLS:-1}" = 1 ]; then
    command -v perf >/dev/null 2>&1 || (apt_install linux-perf) || true
    perf record -q -C "$SERVER_CORE" -e sched:sched_switch -o "$WORK/probe.data" -- true >/dev/null 2>&1 \
        && STALLS=1 || echo "perf cannot trace the scheduler here: other processes' slices are not counted" >&2
fi
OURS="$SERVER,$BARE_PID,$REDIS${DRAINER:+,$DRAINER}"
open_loop() { # url status label server-pid [timeline file] -> "p50 p99 p99.9 generator-late-p99.9" in ms, after checking every answer came
    local line trace=()
    [ "$STALLS" = 1 ] && trace=(perf record -q -C "$SERVER_CORE" -e sched:sched_switch -o "$WORK/sched.data" --)
    line=$(OPEN_LOOP_URL=$1 OPEN_LOOP_STATUS=$2 OPEN_LOOP_RATE=$HALF OPEN_LOOP_SECONDS=$DURATION \
        OPEN_LOOP_LATENCY_LOG="${5:-}" \
        OPEN_LOOP_USER_AGENT="$UA" taskset -c "$CLIENT_CORE" "${trace[@]}" "$OPEN_LOOP_BIN" | grep '^OPEN_LOOP')
    [ "$(count_of "$line" failed)" = 0 ] && [ "$(count_of "$line" unanswered)" = 0 ] \
        || die "open-loop run against $1 lost answers: $line"
    if [ "$STALLS" = 1 ]; then
        perf script -i "$WORK/sched.data" -F pid,tid,time,event,trace >"$WORK/sched.txt" 2>/dev/null
        # Other processes; and anything but the server measured (its
        # neighbours in the bench, Redis above all, included).
        benches/core_stalls.py --ours "$OURS" <"$WORK/sched.txt" >"$WORK/stalls.$3"
        benches/core_stalls.py --ours "$4" <"$WORK/sched.txt" >"$WORK/stalls.$3.all"
        rm -f "$WORK/sched.data" "$WORK/sched.txt"
    fi
    python3 -c "import sys; print(' '.join(f'{int(v) / 1000:.3f}' for v in sys.argv[1:]))" \
        "$(count_of "$line" p50_us)" "$(count_of "$line" p99_us)" "$(count_of "$line" p999_us)" \
        "$(count_of "$line" sender_late_p999_us)"
}
stalls_of() { # label -> "33 slices, 90.9 ms in all, longest 7.33 ms (by thread, ms: ...)"
    [ -s "$WORK/stalls.$1" ] || { echo "not traced"; return; }
    python3 -c 'import sys
f = dict(kv.split("=", 1) for kv in open(sys.argv[1]).read().split()[1:])
by = " ".join(f["by"].split(",")) if f["by"] != "-" else "none"
print("%s slices, %s ms in all, longest %s ms (by thread, ms: %s)" % (f["slices"], f["stalled_ms"], f["longest_ms"], by))' "$WORK/stalls.$1"
}
say "GET /l/{code}, the bare 302 and /healthz at $HALF requests/s, Poisson arrivals"
# The generator spins on the client core, where the stand-in worker drains
# the stream (niced); how late that made the generator is printed below.
# (Pausing the worker with SIGSTOP is no option: a Redis reply it awaited
# meanwhile times out.)
read -r POISSON_BARE_P50 POISSON_BARE_P99 POISSON_BARE_P999 LATE_BARE < <(open_loop "$BARE/l/$CODE" 302 bare "$BARE_PID")
read -r POISSON_HEALTH_P50 POISSON_HEALTH_P99 POISSON_HEALTH_P999 LATE_HEALTH < <(open_loop "$BASE/healthz" 200 health "$SERVER")
# Redis's own pauses: each automatic AOF rewrite forks Redis on the servers' core.
aof_rewrites() { redis_cli info persistence | awk -F: '/^aof_rewrites:/ {print $2}' | tr -d '\r'; }
REWRITES_BEFORE=$(aof_rewrites)
read -r POISSON_P50 POISSON_P99 POISSON_P999 LATE_REDIRECT < <(open_loop "$BASE/l/$CODE" 302 redirect "$SERVER" "${REDIRECT_LATENCY_LOG:-}")
REWRITES=$(aof_rewrites)
POISSON_REWRITES=$((REWRITES - REWRITES_BEFORE))
LAST_FORK_US=$(redis_cli info stats | awk -F: '/^latest_fork_usec:/ {print $2}' | tr -d '\r')
# How late the generator itself sent, at worst (its own stalls inflate what it measures).
GENERATOR_LATE=$(python3 -c "import sys; print(max(sys.argv[1:], key=float))" "$LATE_BARE" "$LATE_HEALTH" "$LATE_REDIRECT")
RSS_KB=$(awk '/^VmHWM/ {print $2}' "/proc/$SERVER/status")

# Redis memory per queued click: the drainer stops, and a short run at full
# rate leaves its events in the stream (as when the workers fall behind).
DRAINED=""
if [ "$DRAIN" = 1 ]; then
    kill -TERM "$DRAINER"; wait "$DRAINER" || true
    DRAINED=$(cat "$WORK/drained.txt")
fi
redis_used() { redis_cli info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r'; }
USED_BEFORE=$(redis_used)
DURATION=3 run_wrk "$BASE/l/$CODE" "$CONNS" >/dev/null

METRICS=$(curl -fs "$BASE/metrics")
SERVED=$(echo "$METRICS" | awk '/^mitra_http_requests_total\{method="GET",route="\/l\/\{code\}",status="302"\}/ {print $2}')
LOST=$(echo "$METRICS" | awk '/^mitra_clicks_total\{.*outcome="log_failed"/ {s += $2} END {print s + 0}')
# SIGTERM: the server answers what is in flight and writes queued clicks.
kill -TERM "$SERVER"; wait "$SERVER" || true
# Every shard's events, decoded (the shards are listed in a registry set).
STATS=$(REDIS_URL="redis://127.0.0.1:$REDIS_PORT" MITRA_REDIS_PREFIX="$PREFIX" target/release/examples/click_stream_stats)
stat_of() { count_of "$STATS" "$1"; }
drained_of() { count_of "$DRAINED" "$1"; }
QUEUED=$(stat_of events) ENTRIES=$(stat_of entries) EVENT_BYTES=$(stat_of event_bytes)
EVENTS=$((QUEUED + $(drained_of events)))
ONCE=$(($(stat_of applied_once) + $(drained_of applied_once)))
REDIS_USED=$(( $(redis_used) - USED_BEFORE ))
REDIS_RSS_KB=$(awk '/^VmRSS/ {print $2}' "/proc/$REDIS/status")
TICK_US=$(python3 -c "import os; print(1e6 / os.sysconf('SC_CLK_TCK'))")

RATIO_HEALTH=$(python3 -c "print(f'{$SUM_REDIRECT / $SUM_HEALTH:.2f}')")
RATIO_BARE=$(python3 -c "print(f'{$SUM_REDIRECT / $SUM_BARE:.2f}')")
# Requests per CPU-second (server and Redis together), all rounds.
CPU_RATIO_HEALTH=$(python3 -c "print(f'{($SUM_REDIRECT / max(1, $CPU_REDIRECT)) / ($SUM_HEALTH / max(1, $CPU_HEALTH)):.2f}')")
CPU_RATIO_BARE=$(python3 -c "print(f'{($SUM_REDIRECT / max(1, $CPU_REDIRECT)) / ($SUM_BARE / max(1, $CPU_BARE)):.2f}')")
cat <<EOF

redirect load test ($(date -u +%F), $(nproc) cores, servers and Redis (AOF everysec) on core $SERVER_CORE, wrk on core $CLIENT_CORE, ${DURATION}s runs, $CONNS connections)
round    /healthz  bare 302  /l/{code}   /health   /bare   redirect p50 / p99   requests per CPU-second: /healthz bare /l/{code}
$ROWS
paced /l/{code} at half the peak: $(printf '%.0f' "$PACED_RPS") req/s, p50 $(to_ms "$(echo "$PACED" | pct 50%)") ms, p99 $PACED_P99 ms
paced bare 302, same connections: $(printf '%.0f' "$PACED_BARE_RPS") req/s, p50 $(to_ms "$(echo "$PACED_BARE" | pct 50%)") ms, p99 $PACED_BARE_P99 ms
paced /healthz, same connections: $(printf '%.0f' "$(echo "$PACED_HEALTH" | rps)") req/s, p50 $(to_ms "$(echo "$PACED_HEALTH" | pct 50%)") ms, p99 $PACED_HEALTH_P99 ms
Poisson arrivals at $HALF req/s, timed from when due (p50 / p99 / p99.9 ms; the generator was late by at most $GENERATOR_LATE ms at its p99.9):
  /l/{code} $POISSON_P50 / $POISSON_P99 / $POISSON_P999   bare 302 $POISSON_BARE_P50 / $POISSON_BARE_P99 / $POISSON_BARE_P999   /healthz $POISSON_HEALTH_P50 / $POISSON_HEALTH_P99 / $POISSON_HEALTH_P999
other processes on the servers' core meanwhile (slices of 1 ms or more, benches/core_stalls.py):
  /l/{code}: $(stalls_of redirect)
  bare 302:  $(stalls_of bare)
  /healthz:  $(stalls_of health)
anything but the server measured, Redis included (the same):
  /l/{code}: $(stalls_of redirect.all)
  bare 302:  $(stalls_of bare.all)
  /healthz:  $(stalls_of health.all)

redirect / healthz throughput:  $RATIO_HEALTH   (all rounds; per CPU-second of server and Redis: $CPU_RATIO_HEALTH)
redirect / bare 302 throughput: $RATIO_BARE   (per CPU-second: $CPU_RATIO_BARE; target: at least 0.65)
p99 at half the peak rate:      $PACED_P99 ms paced by wrk, $POISSON_P99 ms Poisson (bare 302: $PACED_BARE_P99, $POISSON_BARE_P99; target: under 1 ms)
peak resident memory:           $((RSS_KB / 1024)) MiB   (target: under 64 MiB)
Redis AOF rewrites:             $REWRITES in all, $POISSON_REWRITES during the Poisson redirect run (each forks Redis on the servers' core; the last fork took $LAST_FORK_US us)
Redis CPU per redirect:         $(python3 -c "print(f'{$REDIS_TICKS * $TICK_US / max(1, $REDIRECTS_TIMED):.2f}')") us
Redis memory per queued click:  $(python3 -c "print(f'{$REDIS_USED / max(1, $QUEUED):.0f}')") bytes ($QUEUED events left queued in $ENTRIES entries, $(python3 -c "print(f'{$EVENT_BYTES / max(1, $QUEUED):.0f}')") bytes each encoded; Redis RSS $((REDIS_RSS_KB / 1024)) MiB)
stream drained as it filled:    $([ "$DRAIN" = 1 ] && echo "yes, $(drained_of events) events read and trimmed by the stand-in worker" || echo "no (DRAIN=0)")
302s served: $SERVED, click events logged: $EVENTS ($ONCE in distinct batches), lost: $LOST
EOF
echo "RESULT redirect_per_healthz=$RATIO_HEALTH redirect_per_bare=$RATIO_BARE cpu_redirect_per_healthz=$CPU_RATIO_HEALTH cpu_redirect_per_bare=$CPU_RATIO_BARE p99_half_ms=$PACED_P99 bare_p99_same_rate_ms=$PACED_BARE_P99 poisson_p99_half_ms=$POISSON_P99 poisson_bare_p99_ms=$POISSON_BARE_P99 rss_mib=$((RSS_KB / 1024))"
if [ "$SERVED" = "$ONCE" ] && [ "$LOST" = 0 ]; then
    echo "every 302 produced exactly one click event"
else
    echo "MISMATCH: 302s and click events differ"; exit 1
fi
