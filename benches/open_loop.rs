//! Open-loop load generator: GET requests at a steady rate with Poisson
//! arrivals (each gap drawn from an exponential distribution), latency
//! counted from when a request was due, not from when it went out.
//! benches/redirect_load.sh runs it for the tail at half the peak rate.
//!
//! Why not wrk for the tail: wrk paces a connection by a delay after each
//! answer, on its 1 ms event-loop timer, so its paced connections fire
//! together, some 48 requests at once at 48,000/s; the p99 it reports is
//! the time a single core takes to drain such a burst, the bare actix-web
//! handler's included. Shoppers clicking links arrive independently of one
//! another: Poisson arrivals. Counting from the due time also charges every
//! delay in the server's queue to the server (no coordinated omission): a
//! request that found every connection busy waits, and the wait counts.
//!
//! The generator spins on its own core (it never sleeps: a timer would
//! bunch the sends again) and keeps `OPEN_LOOP_CONNECTIONS` keep-alive
//! connections, each with at most one request in flight.
//!
//!   OPEN_LOOP_URL=http://127.0.0.1:8080/l/abc OPEN_LOOP_RATE=40000 \
//!     OPEN_LOOP_SECONDS=10 cargo bench --bench open_loop
//!
//! Prints one line: `OPEN_LOOP rate=… sent=… ok=… failed=… unanswered=…
//! p50_us=… p90_us=… p99_us=… p999_us=… max_us=… sender_late_p99_us=…
//! sender_late_p999_us=…`. Without `OPEN_LOOP_URL` it
//! prints how to use it and exits (so a plain `cargo bench` passes it by).
//!
//! `OPEN_LOOP_LATENCY_LOG=<file>` also writes each answered request's due
//! time (ms since the start) and latency (ms), a line each: whether the
//! slow ones come together (a stall) or alone.

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

fn num(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A duration in whole microseconds, saturating.
fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

struct Conn {
    stream: TcpStream,
    /// When the request in flight was due; `None`: idle.
    due: Option<Instant>,
    buf: Vec<u8>,
}

/// The length of the first complete response in `buf` and whether its
/// status was `expect`; `None` while it is incomplete.
fn response(buf: &[u8], expect: u16) -> Option<(usize, bool)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).expect("a response head in ASCII");
    let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut length = 0usize;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().expect("a numeric content-length");
        }
        assert!(
            !name.eq_ignore_ascii_case("transfer-encoding"),
            "chunked responses are not read here"
        );
    }
    (buf.len() >= end + length).then_some((end + length, status == expect))
}

fn main() {
    let Ok(url) = std::env::var("OPEN_LOOP_URL") else {
        println!(
            "open_loop: set OPEN_LOOP_URL (and OPEN_LOOP_RATE, OPEN_LOOP_SECONDS); see benches/redirect_load.sh"
        );
        return;
    };
    let rate = num("OPEN_LOOP_RATE", 1000.0);
    let seconds = num("OPEN_LOOP_SECONDS", 10.0);
    let connections = num("OPEN_LOOP_CONNECTIONS", 64.0) as usize;
    let expect = num("OPEN_LOOP_STATUS", 302.0) as u16;
    let user_agent = std::env::var("OPEN_LOOP_USER_AGENT").unwrap_or_else(|_| "open-loop".into());
    let rest = url
        .strip_prefix("http://")
        .expect("OPEN_LOOP_URL must be http://host:port/path");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\n\r\n")
            .into_bytes();

    let mut poll = Poll::new().expect("epoll");
    let mut conns: Vec<Conn> = (0..connections)
        .map(|i| {
            let std = std::net::TcpStream::connect(host).expect("connect");
            std.set_nodelay(true).expect("nodelay");
            std.set_nonblocking(true).expect("nonblocking");
            let mut stream = TcpStream::from_std(std);
            poll.registry()
                .register(&mut stream, Token(i), Interest::READABLE)
                .expect("register");
            Conn {
                stream,
                due: None,
                buf: Vec::with_capacity(1024),
            }
        })
        .collect();
    // Taken in turn (first in, first out), so that no connection stays
    // unused long enough for the server's idle timeout to close it.
    let mut idle: VecDeque<usize> = (0..connections).collect();
    // Requests due while every connection was busy, oldest first.
    let mut waiting: VecDeque<Instant> = VecDeque::new();
    // (due, latency in µs) of each answered request: the latencies, and
    // the OPEN_LOOP_LATENCY_LOG timeline.
    let mut timeline: Vec<(Instant, u32)> = Vec::with_capacity((rate * seconds * 1.1) as usize);
    // How late the generator itself sent what it could send at once: its
    // own stalls (a descheduled generator), which inflate the latencies.
    let mut late_us: Vec<u32> = Vec::with_capacity(timeline.capacity());
    let (mut sent, mut failed) = (0u64, 0u64);
    let mut events = Events::with_capacity(connections);

    let send = |conn: &mut Conn, due: Instant| {
        conn.stream
            .write_all(&request)
            .expect("a request fits the socket");
        conn.due = Some(due);
    };
    let gap = || Duration::from_secs_f64(-(1.0 - rand::random::<f64>()).ln() / rate);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    // In-flight requests get this long to finish after the last is due.
    let deadline = end + Duration::from_secs(2);
    let mut next = start + gap();
    loop {
        let now = Instant::now();
        while next <= now && next < end {
            sent += 1;
            match idle.pop_front() {
                Some(i) => {
                    send(&mut conns[i], next);
                    late_us.push(micros(now.duration_since(next)));
                }
                None => waiting.push_back(next),
            }
            next += gap();
        }
        if now >= end && idle.len() == connections && waiting.is_empty() || now >= deadline {
            break;
        }
        poll.poll(&mut events, Some(Duration::ZERO)).expect("poll");
        for event in &events {
            let i = event.token().0;
            let conn = &mut conns[i];
            let mut chunk = [0u8; 4096];
            loop {
                match conn.stream.read(&mut chunk) {
                    Ok(0) => panic!("the server closed a connection"),
                    Ok(n) => conn.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => panic!("read: {e}"),
                }
            }
            let done = Instant::now();
            while let Some((len, ok)) = response(&conn.buf, expect) {
                conn.buf.drain(..len);
                let Some(due) = conn.due.take() else {
                    panic!("an answer to no request (the server timed the connection out?)");
                };
                if ok {
                    timeline.push((due, micros(done.duration_since(due))));
                } else {
                    failed += 1;
                }
                match waiting.pop_front() {
                    Some(due) => send(conn, due),
                    None => idle.push_back(i),
                }
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64().min(seconds);
    if let Some(path) = std::env::var("OPEN_LOOP_LATENCY_LOG")
        .ok()
        .filter(|p| !p.is_empty())
    {
        let lines: String = timeline
            .iter()
            .map(|(due, latency)| {
                format!(
                    "{:.3} {:.3}\n",
                    due.duration_since(start).as_secs_f64() * 1e3,
                    f64::from(*latency) / 1e3
                )
            })
            .collect();
        std::fs::write(&path, lines).expect("OPEN_LOOP_LATENCY_LOG is writable");
    }
    let mut latencies_us: Vec<u32> = timeline.iter().map(|(_, latency)| *latency).collect();
    latencies_us.sort_unstable();
    late_us.sort_unstable();
    let pct_of = |v: &[u32], p: f64| -> u32 {
        if v.is_empty() {
            return 0;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    };
    let pct = |p: f64| pct_of(&latencies_us, p);
    let unanswered = sent - failed - latencies_us.len() as u64;
    println!(
        "OPEN_LOOP rate={:.0} sent={sent} ok={} failed={failed} unanswered={unanswered} p50_us={} p90_us={} p99_us={} p999_us={} max_us={} sender_late_p99_us={} sender_late_p999_us={}",
        latencies_us.len() as f64 / elapsed,
        latencies_us.len(),
        pct(50.0),
        pct(90.0),
        pct(99.0),
        pct(99.9),
        latencies_us.last().copied().unwrap_or(0),
        pct_of(&late_us, 99.0),
        pct_of(&late_us, 99.9),
    );
}
