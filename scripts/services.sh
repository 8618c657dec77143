# shellcheck shell=bash
# Sourced by scripts/demo and scripts/test: makes sure Postgres and Redis are
# installed and running, then exports DATABASE_URL and REDIS_URL.
#
# When DATABASE_URL or REDIS_URL is already set, that server is used as is.
# Otherwise private servers are started on loopback, with their data under
# $MITRA_DEV_DIR (default /tmp/mitra-dev-$USER): Postgres on port 55432, Redis
# on 56379. They keep running after the script ends; `scripts/stop-services`
# stops them.

MITRA_DEV_DIR="${MITRA_DEV_DIR:-/tmp/mitra-dev-$(id -un)}"
MITRA_PG_PORT="${MITRA_PG_PORT:-55432}"
MITRA_REDIS_PORT="${MITRA_REDIS_PORT:-56379}"
MITRA_PG_REPLICA_PORT="${MITRA_PG_REPLICA_PORT:-55433}"

# Redis's persistence as deployed (deploy/docker/compose.yaml, every Redis
# there; deploy/tools/validate.py holds compose to this list): the benches run
# their Redis with it, so they measure what is deployed. AOF, fsynced every
# second. The AOF is rewritten (Redis forks, and the child copies the
# dataset) once it has grown past 1 GB and doubled: the click stream is
# trimmed as the worker applies it, so the AOF grows with the clicks written,
# not the data kept, and the default 64 MB let Redis fork every 10-20 s at
# 20,000 clicks/s. Each fork stalled Redis and the processes sharing its core
# for milliseconds: the 8 s runs at 20,000 redirects/s that held a rewrite
# had a p99.9 of 9.7-19 ms, the others 2.5-4.6 ms. The cost: up to about 2 GB
# of AOF on disk, and a longer replay when Redis restarts.
REDIS_AS_DEPLOYED=(--appendonly yes --appendfsync everysec --auto-aof-rewrite-min-size 1gb)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root to run: $* (install it, or set DATABASE_URL/REDIS_URL)"
    fi
}

apt_install() {
    say "installing $* (Debian packages)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 || {
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null \
            || die "apt-get install $* failed"
    }
}

pg_bin_dir() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
    done
    return 1
}

start_postgres() {
    local bin data log run_as=()
    bin="$(pg_bin_dir)" || { apt_install postgresql; bin="$(pg_bin_dir)" || die "no initdb after installing postgresql"; }
    data="$MITRA_DEV_DIR/pg"
    log="$MITRA_DEV_DIR/pg.log"
    mkdir -p "$MITRA_DEV_DIR"
    chmod 755 "$MITRA_DEV_DIR"
    # The server refuses to run as root: run it as the postgres user then.
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || die "no postgres user (is the postgresql package installed?)"
        run_as=(runuser -u postgres --)
    fi
    if "$bin/pg_isready" -q -h 127.0.0.1 -p "$MITRA_PG_PORT"; then
        :
    else
        if [ ! -s "$data/PG_VERSION" ]; then
            say "creating a private PostgreSQL cluster in $data"
            mkdir -p "$data"
            [ ${#run_as[@]} -gt 0 ] && chown postgres "$data" "$MITRA_DEV_DIR"
            "${run_as[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null \
                || die "initdb failed"
        fi
        [ ${#run_as[@]} -gt 0 ] && chown postgres "$MITRA_DEV_DIR" && touch "$log" && chown postgres "$log"
        # A pid file left by a server that died (a reboot, a kill) makes
        # pg_ctl warn that "another server might be running": drop it.
        if [ -f "$data/postmaster.pid" ] && ! kill -0 "$(head -n1 "$data/postmaster.pid")" 2>/dev/null; then
            rm -f "$data/postmaster.pid"
        fi
        say "starting PostgreSQL on 127.0.0.1:$MITRA_PG_PORT"
        # A throwaway development server: durability traded for speed.
        "${run_as[@]}" "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 start -o \
            "-h 127.0.0.1 -p $MITRA_PG_PORT -k $data -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=256MB" \
            >/dev/null || { tail -n 20 "$log" >&2; die "PostgreSQL did not start"; }
    fi
    export DATABASE_URL="postgres://postgres@127.0.0.1:$MITRA_PG_PORT/${MITRA_DB_NAME:-mitra}"
    "$bin/psql" -q -h 127.0.0.1 -p "$MITRA_PG_PORT" -U postgres -d postgres -tAc \
        "select 1 from pg_database where datname = '${MITRA_DB_NAME:-mitra}'" | grep -q 1 \
        || "$bin/createdb" -h 127.0.0.1 -p "$MITRA_PG_PORT" -U postgres "${MITRA_DB_NAME:-mitra}"
}

start_redis() {
    command -v redis-server >/dev/null 2>&1 || apt_install redis-server
    mkdir -p "$MITRA_DEV_DIR/redis"
    if ! redis-cli -h 127.0.0.1 -p "$MITRA_REDIS_PORT" ping >/dev/null 2>&1; then
        say "starting Redis on 127.0.0.1:$MITRA_REDIS_PORT"
        redis-server --bind 127.0.0.1 --port "$MITRA_REDIS_PORT" --daemonize yes \
            --dir "$MITRA_DEV_DIR/redis" --pidfile "$MITRA_DEV_DIR/redis.pid" \
            --logfile "$MITRA_DEV_DIR/redis.log" --save '' --appendonly no >/dev/null \
            || die "Redis did not start"
        for _ in $(seq 50); do
            redis-cli -h 127.0.0.1 -p "$MITRA_REDIS_PORT" ping >/dev/null 2>&1 && break
            sleep 0.1
        done
    fi
    export REDIS_URL="redis://127.0.0.1:$MITRA_REDIS_PORT"
}

replica_streaming() {
    "$1/psql" -h 127.0.0.1 -p "$MITRA_PG_REPLICA_PORT" -U postgres -d postgres -tAc \
        "select status from pg_stat_wal_receiver" 2>/dev/null | grep -q streaming
}

# A streaming replica of the private Postgres (pg_basebackup -R), for the
# tests of MITRA_DATABASE_READ_URL; exports DATABASE_REPLICA_URL. It has no
# replication slot (a stopped replica must never make the shared server
# keep WAL forever), so one that fell too far behind is made again.
start_replica() {
    local bin data log run_as=()
    bin="$(pg_bin_dir)" || die "no PostgreSQL binaries"
    data="$MITRA_DEV_DIR/pg-replica"
    log="$MITRA_DEV_DIR/pg-replica.log"
    [ "$(id -u)" -eq 0 ] && run_as=(runuser -u postgres --)
    if ! replica_streaming "$bin"; then
        if [ -s "$data/PG_VERSION" ] && ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$MITRA_PG_REPLICA_PORT"; then
            "${run_as[@]}" "$bin/pg_ctl" -D "$data" -l "$log" -w -t 30 start >/dev/null 2>&1 || true
            for _ in $(seq 30); do replica_streaming "$bin" && break; sleep 0.2; done
        fi
    fi
    if ! replica_streaming "$bin"; then
        say "making a streaming replica of PostgreSQL on 127.0.0.1:$MITRA_PG_REPLICA_PORT"
        discard_replica
        mkdir -p "$data"
        chmod 700 "$data"
        [ ${#run_as[@]} -gt 0 ] && chown postgres "$data" && touch "$log" && chown postgres "$log"
        "${run_as[@]}" "$bin/pg_basebackup" -h 127.0.0.1 -p "$MITRA_PG_PORT" -U postgres -D "$data" -R -X stream -c fast \
            >"$log.basebackup" 2>&1 || { cat "$log.basebackup" >&2; die "pg_basebackup failed"; }
        # The same settings as the primary (a standby needs max_connections
        # at least the primary's), on its own port and socket directory.
        "${run_as[@]}" "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 start -o \
            "-h 127.0.0.1 -p $MITRA_PG_REPLICA_PORT -k $data -c max_connections=400 -c fsync=off -c full_page_writes=off -c shared_buffers=64MB -c hot_standby_feedback=on" \
            >/dev/null || { tail -n 20 "$log" >&2; die "the PostgreSQL replica did not start"; }
        for _ in $(seq 50); do replica_streaming "$bin" && break; sleep 0.2; done
        replica_streaming "$bin" || { tail -n 20 "$log" >&2; die "the PostgreSQL replica does not stream"; }
    fi
    # A test that stopped mid-way may have left replay paused.
    "$bin/psql" -q -h 127.0.0.1 -p "$MITRA_PG_REPLICA_PORT" -U postgres -d postgres -tAc \
        "select pg_wal_replay_resume() where pg_is_wal_replay_paused()" >/dev/null
    export DATABASE_REPLICA_URL="postgres://postgres@127.0.0.1:$MITRA_PG_REPLICA_PORT/${MITRA_DB_NAME:-mitra}"
}

# Stops the replica if it runs and removes it: while it runs it replays
# everything the primary writes, every test's new database included (about
# 5 MB of WAL each), on the cores the tests need. The next start_replica
# makes a new one from a base backup, seconds, where a stopped one would
# first replay all it missed.
discard_replica() {
    local bin data run_as=()
    bin="$(pg_bin_dir)" || return 0
    data="$MITRA_DEV_DIR/pg-replica"
    [ -d "$data" ] || return 0
    [ "$(id -u)" -eq 0 ] && run_as=(runuser -u postgres --)
    # A replica already stopped makes pg_ctl fail: nothing to stop then.
    [ -s "$data/PG_VERSION" ] && { "${run_as[@]}" "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true; }
    rm -rf "$data"
}

# The path of a harness-less bench target (a load generator), built in
# release mode: benches run it by path, so no `cargo bench` rebuilds
# anything in the middle of a measurement.
bench_executable() { # name
    SQLX_OFFLINE=true cargo bench --bench "$1" --no-run --message-format=json 2>/dev/null \
        | python3 -c 'import json, sys
for line in sys.stdin:
    j = json.loads(line)
    if j.get("reason") == "compiler-artifact" and j["target"]["name"] == sys.argv[1] and j.get("executable"):
        print(j["executable"])' "$1"
}

ensure_services() {
    if [ -z "${DATABASE_URL:-}" ]; then
        start_postgres
        [ "${MITRA_WITH_REPLICA:-}" = 1 ] && start_replica
    else
        say "using DATABASE_URL from the environment"
    fi
    if [ -z "${REDIS_URL:-}" ]; then start_redis; else say "using REDIS_URL from the environment"; fi
    # Tests start throwaway Redis servers of their own (to stop one mid-test).
    command -v redis-server >/dev/null 2>&1 || apt_install redis-server
}

# The browser and node tools some API tests run: Debian's chromium, node
# and npm, and the npm packages pinned in tests/js/package-lock.json
# (playwright-core, stripe), installed with `npm ci` under $MITRA_DEV_DIR/js
# once per lock file. Exports MITRA_CHROMIUM and MITRA_JS_MODULES.
ensure_js_deps() {
    [ -x /usr/bin/chromium ] || apt_install chromium
    command -v node >/dev/null 2>&1 || apt_install nodejs
    command -v npm >/dev/null 2>&1 || apt_install npm
    local dir="$MITRA_DEV_DIR/js" lock="tests/js/package-lock.json"
    if ! cmp -s "$lock" "$dir/package-lock.json" || [ ! -d "$dir/node_modules" ]; then
        say "installing the test's npm packages into $dir"
        rm -rf "$dir" && mkdir -p "$dir"
        cp tests/js/package.json "$lock" "$dir/"
        (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) \
            || die "npm ci failed"
    fi
    export MITRA_CHROMIUM=/usr/bin/chromium
    export MITRA_JS_MODULES="$dir/node_modules"
}

# The Python tools some API tests run: the Standard Webhooks reference
# library (pinned) in a virtualenv under $MITRA_DEV_DIR/py, which verifies
# real outgoing webhooks as a receiver would. Exports MITRA_PYTHON.
ensure_py_deps() {
    local venv="$MITRA_DEV_DIR/py" version=1.1.0
    if [ "$("$venv/bin/python3" -c 'import standardwebhooks; print(standardwebhooks.__version__)' 2>/dev/null)" != "$version" ]; then
        python3 -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
        say "installing standardwebhooks $version into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "standardwebhooks==$version" \
            || die "pip install standardwebhooks failed"
    fi
    export MITRA_PYTHON="$venv/bin/python3"
}
