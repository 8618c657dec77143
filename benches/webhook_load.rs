//! Load generator for conversion webhooks; benches/conversions_load.sh runs
//! it against a release server. Not a criterion bench: it drives a real
//! server over HTTP and reads the real database.
//!
//! Phases, all in one run so they compare on the same machine state:
//! 1. burst: N signed sales (valid click ids) posted with C connections;
//!    time until every one is booked (attributed with commissions);
//! 2. baseline: one plain multi-row INSERT of N rows into the same Postgres;
//! 3. paced: R webhooks per second for S seconds, latency percentiles.
//!
//! With `LOAD_MODE=soak` (benches/soak.sh) it only posts sales at
//! `LOAD_RATE` per second for `LOAD_SECONDS`, and reports how many were
//! accepted; the script checks the bookings.

use bytes::Bytes;
use chrono::Utc;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use mitra::conversions::signature;
use mitra::domain::LinkId;
use mitra::domain::click_id;
use mitra::domain::signing::KeyRing;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set (run benches/conversions_load.sh)"))
}

fn num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Target {
    url: String,
    secret: String,
    keys: KeyRing,
    link: LinkId,
    /// Three lines per order (books, gift cards, no category), as a shop
    /// sending `items` would.
    items: bool,
}

impl Target {
    fn body(&self, order: &str) -> Vec<u8> {
        let at = Utc::now().timestamp_millis() - 60_000;
        let click = click_id::issue(&self.keys, self.link, at, rand::random()).expect("click id");
        let mut body = serde_json::json!({
            "order_id": order, "event": "sale", "amount_minor": 12_345,
            "currency": "EUR", "click_id": click.as_str()
        });
        if self.items {
            body["items"] = serde_json::json!([
                {"sku": "b", "category": "books", "amount_minor": 4_000},
                {"sku": "g", "category": "gift-cards", "amount_minor": 2_345, "quantity": 2},
                {"sku": "x", "amount_minor": 6_000}
            ]);
        }
        serde_json::to_vec(&body).expect("json")
    }
}

/// One keep-alive connection, with one request on it at a time (the burst's
/// workers and the paced sender's tasks drive them): a request goes straight
/// onto it, where reqwest's pool parsed the URL again, chose a connection
/// and handed the request to it through a channel, about a third of the load
/// generator's CPU (perf) on cores it shares with the server and Postgres.
/// The server sees the same requests either way.
struct Connection {
    sender: SendRequest<Full<Bytes>>,
    uri: hyper::Uri,
    host: hyper::header::HeaderValue,
}

impl Connection {
    async fn open(url: &str) -> anyhow::Result<Self> {
        let uri: hyper::Uri = url.parse()?;
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow::anyhow!("LOAD_BASE has no host"))?
            .clone();
        let stream = tokio::net::TcpStream::connect(authority.as_str()).await?;
        stream.set_nodelay(true)?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            host: authority.as_str().parse()?,
            uri,
        })
    }

    /// Posts one signed body; whether it was accepted.
    async fn post(&mut self, secret: &str, body: Vec<u8>) -> anyhow::Result<bool> {
        let signed = signature::header(secret, Utc::now().timestamp(), &body);
        let request = hyper::Request::post(self.uri.clone())
            .header(hyper::header::HOST, self.host.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header("mitra-signature", signed)
            .body(Full::new(Bytes::from(body)))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let answer = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            eprintln!(
                "webhook_load: {status}: {}",
                String::from_utf8_lossy(&answer[..answer.len().min(200)])
            );
        }
        Ok(status.is_success())
    }
}

fn target() -> anyhow::Result<Target> {
    Ok(Target {
        url: format!(
            "{}/v1/programs/{}/conversions",
            env("LOAD_BASE"),
            env("LOAD_PROGRAM")
        ),
        secret: env("LOAD_SECRET"),
        keys: KeyRing::parse(&SecretString::from(env("MITRA_LINK_KEYS")))
            .map_err(anyhow::Error::msg)?,
        link: LinkId::parse(&env("LOAD_LINK")).map_err(|_| anyhow::anyhow!("LOAD_LINK"))?,
        items: std::env::var("LOAD_ITEMS").is_ok_and(|v| !v.is_empty()),
    })
}

/// Signed sales at a steady rate for a while (open loop: a slow answer
/// does not slow the offered rate).
async fn soak() -> anyhow::Result<()> {
    let rate = num("LOAD_RATE", 200);
    let seconds = num("LOAD_SECONDS", 60);
    let run = env("LOAD_RUN_ID");
    let target = Arc::new(target()?);
    let total = (rate * seconds) as usize;
    let paced = post_paced(&target, rate, 0, total, |i| {
        target.body(&format!("{run}-soak-{i}"))
    })
    .await?;
    let failed = paced.failed;
    println!(
        "soak: {total} sales at {:.0}/s, {failed} refused: p50 {:.2} ms, p99 {:.2} ms",
        paced.achieved_rate(),
        paced.percentile(0.5),
        paced.percentile(0.99)
    );
    println!("RESULT sales_posted={total} sales_refused={failed}");
    Ok(())
}

/// Keep-alive connections the paced sender opens before it starts.
const PACED_CONNECTIONS: usize = 32;

/// What an open-loop run of webhooks measured (the warm-up left out).
struct Paced {
    /// Each request's send time from the start, and how long its answer took.
    timeline: Vec<(Duration, Duration)>,
    /// The timeline's latencies, sorted.
    latencies: Vec<Duration>,
    /// Sorted: how long after its due time each request went out. Large
    /// means the generator, sharing the cores, fell behind its schedule.
    late: Vec<Duration>,
    failed: usize,
    sent: usize,
    sending_took: Duration,
}

impl Paced {
    fn percentile(&self, p: f64) -> f64 {
        percentile(&self.latencies, p)
    }

    fn late_percentile(&self, p: f64) -> f64 {
        percentile(&self.late, p)
    }

    fn achieved_rate(&self) -> f64 {
        self.sent as f64 / self.sending_took.as_secs_f64().max(1e-9)
    }
}

/// Posts `warm_up + total` webhooks, request i due at i/rate s from the
/// start whatever the answers before it took (open loop). Each goes out on
/// its own task over an idle keep-alive connection, or a new one when all
/// are busy (opening it counts in its latency), as a shop's many clients
/// would; latency runs from when the task starts to the whole answer. The
/// first `warm_up` requests are not counted: a server just started opens
/// its Postgres connections and plans its statements on them.
///
/// Over plain hyper connections rather than reqwest's pool: at 1,000/s the
/// generator's CPU comes off the cores the server and Postgres share.
async fn post_paced(
    target: &Arc<Target>,
    rate: u64,
    warm_up: usize,
    total: usize,
    mut body: impl FnMut(usize) -> Vec<u8>,
) -> anyhow::Result<Paced> {
    // The one used last goes first (as reqwest's pool does), so the few a
    // steady rate needs stay warm; those idle long enough for the server's
    // keep-alive timeout to close them are replaced when next needed.
    let idle = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    for _ in 0..PACED_CONNECTIONS {
        let connection = Connection::open(&target.url).await?;
        idle.lock().expect("idle connections").push_back(connection);
    }
    let gap = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut paced = Paced {
        timeline: Vec::with_capacity(total),
        latencies: Vec::new(),
        late: Vec::with_capacity(total),
        failed: 0,
        sent: warm_up + total,
        sending_took: Duration::ZERO,
    };
    let record =
        |paced: &mut Paced,
         (i, sent, late, took, ok): (usize, Duration, Duration, Duration, bool)| {
            if i >= warm_up {
                paced.timeline.push((sent, took));
                paced.late.push(late);
                paced.failed += usize::from(!ok);
            }
        };
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for i in 0..warm_up + total {
        let due = started + gap.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let (target, idle, body) = (target.clone(), idle.clone(), body(i));
        tasks.spawn(async move {
            let sent = Instant::now();
            let late = sent.saturating_duration_since(due);
            let idle_one = idle.lock().expect("idle connections").pop_back();
            let result = async {
                let mut connection = match idle_one {
                    Some(connection) if !connection.sender.is_closed() => connection,
                    _ => Connection::open(&target.url).await?,
                };
                let ok = connection.post(&target.secret, body).await?;
                idle.lock().expect("idle connections").push_back(connection);
                anyhow::Ok(ok)
            }
            .await;
            if let Err(e) = &result {
                eprintln!("webhook_load: {e}");
            }
            let ok = matches!(result, Ok(true));
            (i, sent - started, late, sent.elapsed(), ok)
        });
        // Collect as we go, so a long soak holds no more than is in flight.
        while let Some(done) = tasks.try_join_next() {
            record(&mut paced, done?);
        }
    }
    paced.sending_took = started.elapsed();
    while let Some(done) = tasks.join_next().await {
        record(&mut paced, done?);
    }
    paced.latencies = paced.timeline.iter().map(|(_, took)| *took).collect();
    paced.latencies.sort();
    paced.late.sort();
    Ok(paced)
}

/// CPU ticks (1/100 s) by pid, from /proc: the bench runs beside the
/// server and Postgres, so it can read what each of them spent.
struct CpuTicks(std::collections::HashMap<i32, u64>);

/// The numeric fields of /proc/{pid}/stat after the command name (which
/// may hold spaces), from the state (0, read as 0) on: 1 is the parent,
/// 11 and 12 utime and stime, 13 and 14 cutime and cstime.
fn stat_fields(pid: i32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(
        rest.split_whitespace()
            .take(15)
            .map(|v| v.parse().unwrap_or(0))
            .collect(),
    )
}

/// utime + stime from a process's stat fields (all its threads), and with
/// `children` also what its exited and reaped children spent (cutime +
/// cstime).
fn ticks(f: &[u64], children: bool) -> Option<u64> {
    let own = f.get(11)? + f.get(12)?;
    Some(if children {
        own + f.get(13)? + f.get(14)?
    } else {
        own
    })
}

fn ticks_of(pid: i32, children: bool) -> Option<u64> {
    ticks(&stat_fields(pid)?, children)
}

/// The Postgres backends serving this database (a shared development
/// server's other databases are left out).
async fn postgres_backends(db: &sqlx::PgPool) -> anyhow::Result<CpuTicks> {
    let pids: Vec<i32> =
        sqlx::query_scalar("select pid from pg_stat_activity where datname = current_database()")
            .fetch_all(db)
            .await?;
    Ok(CpuTicks(
        pids.into_iter()
            .filter_map(|pid| Some((pid, ticks_of(pid, false)?)))
            .collect(),
    ))
}

/// The whole Postgres server: the postmaster with every child it reaped
/// (an autovacuum worker that came and went), and its live children
/// (backends, WAL writer, checkpointer). Only meaningful for a server of
/// the bench's own (`LOAD_PG_PRIVATE=1`).
async fn postgres_server(db: &sqlx::PgPool) -> anyhow::Result<CpuTicks> {
    let backend: i32 = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(db)
        .await?;
    let postmaster = stat_fields(backend)
        .and_then(|f| Some(f.get(1).copied()? as i32))
        .ok_or_else(|| anyhow::anyhow!("no postmaster"))?;
    let mut by_pid = std::collections::HashMap::new();
    by_pid.insert(postmaster, ticks_of(postmaster, true).unwrap_or(0));
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        // One read of each process's stat: its parent and its ticks.
        if let Some(f) = stat_fields(pid)
            && f.get(1) == Some(&(postmaster as u64))
            && let Some(t) = ticks(&f, false)
        {
            by_pid.insert(pid, t);
        }
    }
    Ok(CpuTicks(by_pid))
}

fn process(pid: i32) -> CpuTicks {
    processes(&[pid])
}

fn processes(pids: &[i32]) -> CpuTicks {
    CpuTicks(
        pids.iter()
            .filter_map(|&pid| Some((pid, ticks_of(pid, false)?)))
            .collect(),
    )
}

impl CpuTicks {
    /// Seconds used since `before`, by processes alive at both times and
    /// (all of it) by those started since.
    fn since(&self, before: &CpuTicks) -> f64 {
        let ticks: u64 = self
            .0
            .iter()
            .map(|(pid, t)| t - before.0.get(pid).copied().unwrap_or(0).min(*t))
            .sum();
        ticks as f64 / 100.0
    }
}

/// What the burst cost each process, read before and after it.
struct CpuShares {
    backends: CpuTicks,
    server: Option<CpuTicks>,
    mitra: Option<CpuTicks>,
    me: CpuTicks,
}

impl CpuShares {
    async fn read(db: &sqlx::PgPool) -> anyhow::Result<Self> {
        let private = std::env::var("LOAD_PG_PRIVATE").as_deref() == Ok("1");
        // mitra's processes, comma-separated (the API and the worker, as
        // deployed), counted together.
        let mitra = std::env::var("LOAD_SERVER_PID").ok().map(|pids| {
            pids.split(',')
                .filter_map(|p| p.trim().parse().ok())
                .collect::<Vec<i32>>()
        });
        Ok(Self {
            backends: postgres_backends(db).await?,
            server: if private {
                Some(postgres_server(db).await?)
            } else {
                None
            },
            mitra: mitra.map(|pids| processes(&pids)),
            me: process(std::process::id() as i32),
        })
    }
}

/// Microseconds of CPU per booking in each process that served the burst,
/// and the booking rate the machine's cores would allow at those costs
/// (everything here shares them: load generator, server, Postgres).
fn report_cpu_per_booking(before: &CpuShares, after: &CpuShares, n: usize) {
    let per = |s: f64| s * 1e6 / n.max(1) as f64;
    let me = after.me.since(&before.me);
    let mut total = me;
    let mut parts = Vec::new();
    if let (Some(a), Some(b)) = (&after.mitra, &before.mitra) {
        let mitra = a.since(b);
        total += mitra;
        parts.push(format!("mitra {:.0} µs", per(mitra)));
    }
    let backends = after.backends.since(&before.backends);
    match (&after.server, &before.server) {
        (Some(a), Some(b)) => {
            let server = a.since(b);
            total += server;
            parts.push(format!(
                "Postgres {:.0} µs (backends {:.0})",
                per(server),
                per(backends)
            ));
        }
        _ => {
            total += backends;
            parts.push(format!("Postgres backends {:.0} µs", per(backends)));
        }
    }
    parts.push(format!("load generator {:.0} µs", per(me)));
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!("  CPU per booking: {}", parts.join(", "));
    println!(
        "  at these costs {cores} cores allow at most {:.0} bookings/s ({:.0} µs of CPU each)",
        n as f64 / total.max(0.001) * cores as f64,
        per(total)
    );
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench, and test runners ask for a --list of
    // tests (there are none); the settings come from the environment.
    if std::env::args().any(|a| a == "--list") || std::env::var("LOAD_RUN_ID").is_err() {
        eprintln!("webhook_load: run it through benches/conversions_load.sh");
        return Ok(());
    }
    if std::env::var("LOAD_MODE").as_deref() == Ok("soak") {
        return soak().await;
    }
    let n = num("LOAD_CONVERSIONS", 20_000) as usize;
    let conns = num("LOAD_CONNECTIONS", 64) as usize;
    let rate = num("LOAD_RATE", 1_000);
    let paced_secs = num("LOAD_PACED_SECONDS", 10);
    let run = env("LOAD_RUN_ID");
    let target = Arc::new(target()?);
    let db = sqlx::PgPool::connect(&env("DATABASE_URL")).await?;

    // 1. Burst.
    let bodies: Vec<Vec<u8>> = (0..n)
        .map(|i| target.body(&format!("{run}-burst-{i}")))
        .collect();
    let bodies = Arc::new(tokio::sync::Mutex::new(bodies));
    let cpu_before = CpuShares::read(&db).await?;
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..conns {
        let (target, bodies) = (target.clone(), bodies.clone());
        let mut connection = Connection::open(&target.url).await?;
        workers.push(tokio::spawn(async move {
            let mut failed = 0usize;
            loop {
                let Some(body) = bodies.lock().await.pop() else {
                    break;
                };
                match connection.post(&target.secret, body).await {
                    Ok(true) => {}
                    Ok(false) => failed += 1,
                    Err(e) => {
                        // A broken connection fails this request; the next
                        // goes over a new one.
                        eprintln!("webhook_load: {e}");
                        failed += 1;
                        connection = Connection::open(&target.url).await?;
                    }
                }
            }
            anyhow::Ok(failed)
        }));
    }
    let mut failed = 0;
    for w in workers {
        failed += w.await??;
    }
    let accepted_in = started.elapsed();
    let like = format!("{run}-burst-%");
    // Builds before 971864d (an A/B's other side) queued in `conversions`
    // itself, through a partial index on the status.
    let queue_apart: bool =
        sqlx::query_scalar("select to_regclass('attribution_queue') is not null")
            .fetch_one(&db)
            .await?;
    let anything_left = if queue_apart {
        "select exists (select 1 from attribution_queue)"
    } else {
        "select exists (select 1 from conversions where status = 'received')"
    };
    loop {
        // Is anything left? (Not a count: under churn the queue is full of
        // dead entries, and counting them every few milliseconds took
        // Postgres time from the run it measures.)
        let left: bool = sqlx::query_scalar(anything_left).fetch_one(&db).await?;
        if !left {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("conversions still unbooked after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let booked_in = started.elapsed();
    let cpu_after = CpuShares::read(&db).await?;
    let pg_cpu = cpu_after.backends.since(&cpu_before.backends);
    let commissions: i64 = sqlx::query_scalar(
        "select count(*) from commissions c join conversions v on v.id = c.conversion_id where v.order_id like $1",
    )
    .bind(&like)
    .fetch_one(&db)
    .await?;

    // 2. Baseline: the same number of rows in one plain INSERT.
    let mut conn = db.acquire().await?;
    sqlx::query("create temporary table if not exists baseline (order_id text, event text, amount_minor bigint, currency text, click_id text, idempotency_key text)")
        .execute(&mut *conn)
        .await?;
    let orders: Vec<String> = (0..n).map(|i| format!("{run}-base-{i}")).collect();
    let started_base = Instant::now();
    sqlx::query(
        "insert into baseline (order_id, event, amount_minor, currency, click_id, idempotency_key)
         select o, 'sale', 12345, 'EUR', 'x', o from unnest($1::text[]) as o",
    )
    .bind(&orders)
    .execute(&mut *conn)
    .await?;
    let baseline = started_base.elapsed();

    // 3. Paced: one request every 1/rate s (open loop), after a second at
    // that rate which is not counted.
    let total = (rate * paced_secs) as usize;
    let paced = post_paced(&target, rate, rate as usize, total, |i| {
        target.body(&format!("{run}-paced-{i}"))
    })
    .await?;
    // LOAD_LATENCY_LOG=<file>: each counted request's send time and latency
    // (ms), to see whether the slow ones come together (a stall of the
    // server, Postgres or the host) or alone.
    if let Ok(path) = std::env::var("LOAD_LATENCY_LOG") {
        let lines: String = paced
            .timeline
            .iter()
            .map(|(sent, took)| {
                format!(
                    "{:.3} {:.3}\n",
                    sent.as_secs_f64() * 1000.0,
                    took.as_secs_f64() * 1000.0
                )
            })
            .collect();
        std::fs::write(path, lines)?;
    }

    println!("conversions: {n} posted with {conns} connections, {failed} refused");
    println!(
        "  all accepted after {:.2} s ({:.0} webhooks/s)",
        accepted_in.as_secs_f64(),
        n as f64 / accepted_in.as_secs_f64()
    );
    println!(
        "  all booked after {:.2} s: {:.0} conversions booked per second end to end ({commissions} commissions)",
        booked_in.as_secs_f64(),
        n as f64 / booked_in.as_secs_f64()
    );
    println!(
        "  Postgres CPU for it: {:.2} s, {:.0} bookings per Postgres CPU-second",
        pg_cpu,
        n as f64 / pg_cpu.max(0.001)
    );
    report_cpu_per_booking(&cpu_before, &cpu_after, n);
    println!(
        "  plain multi-row INSERT of {n} rows: {:.3} s ({:.0} rows/s); end to end / plain insert: {:.1}x",
        baseline.as_secs_f64(),
        n as f64 / baseline.as_secs_f64(),
        booked_in.as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "paced: {total} webhooks at {:.0}/s, {} failed: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (sent late: p99 {:.2} ms)",
        paced.achieved_rate(),
        paced.failed,
        paced.percentile(0.5),
        paced.percentile(0.9),
        paced.percentile(0.99),
        paced.percentile(1.0),
        paced.late_percentile(0.99)
    );
    println!(
        "RESULT booked_per_s={:.0} p99_ms={:.2} bookings_per_pg_cpu_s={:.0}",
        n as f64 / booked_in.as_secs_f64(),
        paced.percentile(0.99),
        n as f64 / pg_cpu.max(0.001)
    );
    Ok(())
}
