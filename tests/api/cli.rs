//! The `mitra` binary as an operator runs it.

use crate::helpers::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mitra() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mitra"));
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "MITRA_LISTEN",
        "MITRA_PUBLIC_URL",
        "MITRA_ADMIN_TOKEN",
        "MITRA_LINK_KEYS",
        "MITRA_REDIS_PREFIX",
        "MITRA_LOG_FORMAT",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

const GOOD: &[(&str, &str)] = &[
    ("DATABASE_URL", "postgres://mitra:hunter2@127.0.0.1:1/mitra"),
    ("REDIS_URL", "redis://127.0.0.1:1"),
    ("MITRA_ADMIN_TOKEN", "admin-token-secret-0123456789"),
    ("MITRA_LINK_KEYS", "1:linkkeysecretlinkkeysecret"),
];

#[test]
fn a_missing_or_malformed_variable_stops_the_start_with_one_clear_line() {
    let cases: &[(&str, Option<&str>)] = &[
        ("DATABASE_URL", None),
        ("REDIS_URL", None),
        ("MITRA_ADMIN_TOKEN", None),
        ("MITRA_LINK_KEYS", None),
        ("MITRA_LINK_KEYS", Some("1:short")),
        ("MITRA_LINK_KEYS", Some("nonsense")),
        ("MITRA_LISTEN", Some("not-an-address")),
        ("MITRA_PUBLIC_URL", Some("example.com")),
        ("DATABASE_URL", Some("mysql://x@y/z")),
    ];
    for (var, value) in cases {
        let mut cmd = mitra();
        cmd.arg("serve");
        for (k, v) in GOOD {
            if k != var {
                cmd.env(k, v);
            }
        }
        if let Some(v) = value {
            cmd.env(var, v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}={value:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].contains(var), "{stderr}");
        assert!(!stderr.contains("panicked"));
        for secret in ["hunter2", "admin-token-secret", "linkkeysecret", "short"] {
            assert!(!stderr.contains(secret), "leaked {secret}: {stderr}");
        }
    }
}

/// Processes started together (an api and a worker, pods of a rollout) may
/// all migrate one new database: one applies, the others wait for it and
/// find nothing left. A migration that waits for older snapshots (an index
/// built concurrently) would deadlock with the processes waiting for the
/// migration lock; none may.
#[tokio::test]
async fn three_processes_migrating_a_new_database_at_once_all_succeed() {
    let (_name, url) = fresh_empty_database().await;
    let children: Vec<_> = (0..3)
        .map(|_| {
            mitra()
                .arg("migrate")
                .envs(GOOD.iter().copied())
                .env("DATABASE_URL", url.as_str())
                .env("REDIS_URL", std::env::var("REDIS_URL").unwrap())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let pool = sqlx::PgPool::connect(url.as_str()).await.unwrap();
    let applied: i64 = sqlx::query_scalar("select count(*) from _sqlx_migrations where success")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(applied, mitra::db::MIGRATOR.iter().count() as i64);
    pool.close().await;
}

#[tokio::test]
async fn serve_migrates_serves_and_exits_0_soon_after_sigterm() {
    let (_name, url) = fresh_empty_database().await;
    // Killed when the test ends, should an assertion fail first.
    let mut server = ServerProcess::start(
        &["serve"],
        &GOOD
            .iter()
            .map(|(k, v)| (*k, v.to_string()))
            .chain([
                ("DATABASE_URL", url.to_string()),
                ("REDIS_URL", std::env::var("REDIS_URL").unwrap()),
                ("MITRA_REDIS_PREFIX", "test:cli:".to_owned()),
            ])
            .collect::<Vec<_>>(),
    );
    // JSON logs on stdout, up to the line announcing the port.
    let logged = server.logs.lock().unwrap().clone();
    for line in &logged {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
    let port = server.port;
    let base = format!("http://127.0.0.1:{port}");
    let check = mitra()
        .arg("healthcheck")
        .env("MITRA_LISTEN", format!("0.0.0.0:{port}"))
        .status()
        .unwrap();
    assert!(check.success(), "healthcheck passes while serving");
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let pool = sqlx::PgPool::connect(url.as_str()).await.unwrap();
    let tables: i64 = sqlx::query_scalar(
        "select count(*) from information_schema.tables where table_name = 'programs'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(tables, 1, "migrations were applied");
    for line in &logged {
        assert!(
            !line.contains("hunter2") && !line.contains("admin-token-secret"),
            "{line}"
        );
    }

    let started = Instant::now();
    Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn sign_standard_prints_the_three_headers_the_conversion_webhook_accepts() {
    let app = spawn_app().await;
    let program = app.create_program().await;
    let body = r#"{"order_id":"STD-1","event":"sale","amount_minor":1000,"currency":"EUR"}"#;
    let out = mitra()
        .args(["sign", "--standard", "--secret"])
        .args([s(&program["webhook_secret"]), body])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let headers: Vec<(String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (name, value) = l.split_once(": ").expect("name: value");
            (name.to_owned(), value.to_owned())
        })
        .collect();
    let names: Vec<&str> = headers.iter().map(|h| h.0.as_str()).collect();
    assert_eq!(
        names,
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
    );
    assert!(headers[0].1.starts_with("msg_"), "{headers:?}");
    let path = format!("/v1/programs/{}/conversions", s(&program["id"]));
    let mut req = app
        .client
        .post(app.url(&path))
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in &headers {
        req = req.header(name, value);
    }
    assert_status(req.send().await.unwrap(), reqwest::StatusCode::ACCEPTED).await;

    // A secret mitra could not have issued: said so, nothing printed.
    let out = mitra()
        .args(["sign", "--standard", "--secret", "whsec_not base64!", body])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not whsec_ followed by base64"));
}

#[test]
fn sign_prints_the_header_a_shop_would_send() {
    let out = mitra()
        .args([
            "sign",
            "--secret",
            "whsec_test",
            "--timestamp",
            "1700000000",
            r#"{"a":1}"#,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    let expected =
        mitra::conversions::signature::header("whsec_test", 1_700_000_000, br#"{"a":1}"#);
    assert_eq!(line.trim(), expected);
    assert!(line.starts_with("t=1700000000,v1="));
}

#[test]
fn gen_key_prints_a_usable_link_key() {
    let out = mitra().args(["gen-key", "--id", "7"]).output().unwrap();
    let key = String::from_utf8(out.stdout).unwrap();
    let ring =
        mitra::domain::signing::KeyRing::parse(&secrecy::SecretString::from(key.trim().to_owned()))
            .unwrap();
    assert_eq!(ring.signer().id(), 7);
}

#[tokio::test]
async fn on_sigterm_a_request_in_flight_is_answered_before_the_exit() {
    use std::io::{Read, Write};
    let (_db, url) = fresh_database().await;
    let admin = "admin-token-sigterm-0123456789";
    let mut server = ServerProcess::start(
        &["serve", "--role", "api"],
        &[
            ("DATABASE_URL", url.to_string()),
            ("REDIS_URL", std::env::var("REDIS_URL").unwrap()),
            ("MITRA_ADMIN_TOKEN", admin.to_owned()),
            (
                "MITRA_LINK_KEYS",
                "1:sigterm-test-link-key-01234567".to_owned(),
            ),
            (
                "MITRA_REDIS_PREFIX",
                format!("test:sigterm:{}:", std::process::id()),
            ),
        ],
    );
    let program: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v1/programs", server.base))
        .bearer_auth(admin)
        .json(&serde_json::json!({"name": "Shop", "currency": "EUR", "landing_domains": ["shop.example"],
                                  "default_url": "https://shop.example/", "commission": {}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let body = br#"{"order_id":"IN-FLIGHT-1","event":"sale","amount_minor":1000,"currency":"EUR"}"#;
    let signature = mitra::conversions::signature::header(
        program["webhook_secret"].as_str().unwrap(),
        chrono::Utc::now().timestamp(),
        body,
    );
    let (port, pid, program_id) = (
        server.port,
        server.child.id(),
        program["id"].as_str().unwrap().to_owned(),
    );
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            stream,
            "POST /v1/programs/{program_id}/conversions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nMitra-Signature: {signature}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        // Half the body now, then SIGTERM while the request is in flight...
        stream.write_all(&body[..20]).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        // ...and the rest while the server drains.
        stream.write_all(&body[20..]).unwrap();
        let mut answer = String::new();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).unwrap();
        answer.push_str(&String::from_utf8_lossy(&buf[..n]));
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    let pool = sqlx::PgPool::connect(url.as_str()).await.unwrap();
    let stored: i64 =
        sqlx::query_scalar("select count(*) from conversions where order_id = 'IN-FLIGHT-1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, 1, "the answered conversion was committed");
}
