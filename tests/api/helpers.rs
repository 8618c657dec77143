//! Starts the real application (the same `Application::build` as `mitra
//! serve`, on port 0) against real Postgres and Redis. Every test gets its
//! own database, cloned from a migrated template, and its own Redis key
//! prefix, so tests run in parallel without seeing each other.

use mitra::config::Settings;
use mitra::startup::{Application, Roles};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use url::Url;

pub struct TestApp {
    pub address: String,
    pub port: u16,
    /// The separate metrics listener's port (`MITRA_METRICS_LISTEN`).
    pub metrics_port: Option<u16>,
    pub db: PgPool,
    pub database: std::sync::Arc<TempDatabase>,
    pub settings: Settings,
    pub admin_token: String,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    pub state: actix_web::web::Data<mitra::http::state::AppState>,
    /// Builds workers on this app's back ends, as `mitra serve` does.
    pub workers: mitra::startup::Workers,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

fn base_database_url() -> Url {
    let raw = std::env::var("DATABASE_URL").expect(
        "DATABASE_URL is not set: run the tests with scripts/test, which starts Postgres and Redis",
    );
    Url::parse(&raw).expect("DATABASE_URL is a URL")
}

fn redis_url() -> String {
    std::env::var("REDIS_URL").expect(
        "REDIS_URL is not set: run the tests with scripts/test, which starts Postgres and Redis",
    )
}

fn with_database(url: &Url, name: &str) -> Url {
    let mut url = url.clone();
    url.set_path(&format!("/{name}"));
    url
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}_{}_{}", std::process::id(), n, nanos % 1_000_000_000)
}

/// A migrated template database named after the migrations' checksums, made
/// once per migration set and shared by every test process.
async fn template_database() -> &'static str {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    TEMPLATE
        .get_or_init(|| async {
            let mut hash: u64 = 0xcbf29ce484222325;
            for m in mitra::db::MIGRATOR.iter() {
                for b in m.checksum.iter() {
                    hash = (hash ^ u64::from(*b)).wrapping_mul(0x100000001b3);
                }
            }
            let name = format!("mitra_tmpl_{:016x}", hash);
            let base = base_database_url();
            let mut admin = PgConnection::connect(with_database(&base, "postgres").as_str())
                .await
                .expect("connect to the postgres database");
            // Serialize template creation across test processes.
            admin
                .execute("select pg_advisory_lock(727274)")
                .await
                .unwrap();
            let exists: bool =
                sqlx::query_scalar("select exists(select 1 from pg_database where datname = $1)")
                    .bind(&name)
                    .fetch_one(&mut admin)
                    .await
                    .unwrap();
            if !exists {
                let building = format!("{name}_building");
                admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        r#"drop database if exists "{building}" with (force)"#
                    )))
                    .await
                    .unwrap();
                admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        r#"create database "{building}""#
                    )))
                    .await
                    .unwrap();
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(with_database(&base, &building).as_str())
                    .await
                    .unwrap();
                mitra::db::migrate(&pool).await.expect("migrations apply");
                pool.close().await;
                admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        r#"alter database "{building}" rename to "{name}""#
                    )))
                    .await
                    .unwrap();
            }
            admin
                .execute("select pg_advisory_unlock(727274)")
                .await
                .unwrap();
            name
        })
        .await
}

/// A fresh database cloned from the template.
pub async fn fresh_database() -> (TempDatabase, Url) {
    let template = template_database().await;
    let name = format!("mitra_test_{}", unique_suffix());
    let base = base_database_url();
    let mut admin = PgConnection::connect(with_database(&base, "postgres").as_str())
        .await
        .unwrap();
    // Cloning fails while another session is connected to the template;
    // that only happens for an instant while another process checks it.
    let mut tries = 0;
    loop {
        let sql = format!(r#"create database "{name}" template "{template}""#);
        match admin.execute(sqlx::AssertSqlSafe(sql)).await {
            Ok(_) => break,
            Err(e) if tries < 50 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot create the test database: {e}"),
        }
    }
    let url = with_database(&base, &name);
    (TempDatabase { name }, url)
}

/// A fresh database with nothing in it, not even migrations.
pub async fn fresh_empty_database() -> (TempDatabase, Url) {
    let name = format!("mitra_test_{}", unique_suffix());
    let base = base_database_url();
    let mut admin = PgConnection::connect(with_database(&base, "postgres").as_str())
        .await
        .unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!(r#"create database "{name}""#)))
        .await
        .unwrap();
    let url = with_database(&base, &name);
    (TempDatabase { name }, url)
}

/// Settings for a test: its own database and Redis prefix, port 0, fresh keys.
pub fn test_settings(database_url: &Url, extra: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = HashMap::from([
        ("DATABASE_URL".into(), database_url.to_string()),
        ("REDIS_URL".into(), redis_url()),
        ("MITRA_LISTEN".into(), "127.0.0.1:0".into()),
        (
            "MITRA_ADMIN_TOKEN".into(),
            format!("admin-{}", mitra::domain::random_token()),
        ),
        (
            "MITRA_LINK_KEYS".into(),
            format!("1:{}", mitra::domain::random_token()),
        ),
        (
            "MITRA_REDIS_PREFIX".into(),
            format!("test:{}:", unique_suffix()),
        ),
        ("MITRA_HTTP_WORKERS".into(), "2".into()),
        ("MITRA_DB_MAX_CONNECTIONS".into(), "10".into()),
        ("MITRA_WORKER_POLL_MS".into(), "50".into()),
    ]);
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    Settings::from_lookup(|k| env.get(k).cloned()).expect("test settings are valid")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Roles::API, &[]).await
}

pub async fn spawn_app_with(roles: Roles, extra: &[(&str, &str)]) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        mitra::telemetry::init(mitra::config::LogFormat::Text);
    }
    let (database, url) = fresh_database().await;
    let settings = test_settings(&url, extra);
    start(settings, std::sync::Arc::new(database), roles).await
}

/// Starts an application on `settings` (e.g. a second process on the same database).
/// The database guard is shared, so it is dropped after the last process using it.
pub async fn start(
    settings: Settings,
    database: std::sync::Arc<TempDatabase>,
    roles: Roles,
) -> TestApp {
    let app = Application::build(settings.clone(), roles)
        .await
        .expect("the application builds");
    let port = app.port();
    let metrics_port = app.metrics_port();
    let state = app.state();
    let workers = app.workers();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let db = PgPoolOptions::new()
        .max_connections(5)
        .connect_lazy(settings.expose_database_url())
        .expect("a valid database URL");
    use secrecy::ExposeSecret;
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        metrics_port,
        db,
        database,
        admin_token: settings.admin_token.expose_secret().to_owned(),
        settings,
        client: client_builder().build().unwrap(),
        shutdown,
        state,
        workers,
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        req.send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Response {
        self.request(Method::POST, path, Some(token), Some(body))
            .await
    }

    pub async fn put(&self, path: &str, token: &str, body: &Value) -> Response {
        self.request(Method::PUT, path, Some(token), Some(body))
            .await
    }

    /// Creates a program as the admin; answers its JSON (with api_key and webhook_secret).
    pub async fn create_program(&self) -> Value {
        self.create_program_with(json!({})).await
    }

    /// A program with fields of `overrides` replacing the defaults.
    pub async fn create_program_with(&self, overrides: Value) -> Value {
        let mut body = json!({
            "name": "Batik Shop",
            "currency": "EUR",
            "landing_domains": ["shop.example", "www.shop.example"],
            "default_url": "https://shop.example/",
            "attribution_window_days": 30,
            "hold_days": 30,
            "commission": {"sale": {"percent_bps": 1000}, "lead": {"flat_minor": 200}}
        });
        merge(&mut body, overrides);
        let res = self.post("/v1/programs", &self.admin_token, &body).await;
        assert_status(res, StatusCode::CREATED).await
    }

    pub async fn create_partner(&self, name: &str) -> Value {
        let body = json!({"name": name, "email": format!("{}@example.com", name.to_lowercase().replace(' ', "."))});
        let res = self.post("/v1/partners", &self.admin_token, &body).await;
        assert_status(res, StatusCode::CREATED).await
    }

    /// Makes `partner` an active member of `program`: the program invites
    /// it, the partner accepts. Answers the membership.
    pub async fn enroll(&self, program: &Value, partner: &Value) -> Value {
        let path = format!("/v1/programs/{}/enrollments", s(&program["id"]));
        let res = self
            .post(
                &path,
                &self.admin_token,
                &json!({"partner_id": partner["id"]}),
            )
            .await;
        let invited = assert_status(res, StatusCode::CREATED).await;
        let accept = format!("/v1/enrollments/{}/accept", s(&invited["id"]));
        let res = self
            .request(Method::POST, &accept, Some(s(&partner["api_key"])), None)
            .await;
        assert_status(res, StatusCode::OK).await
    }

    /// An agreement of `program` giving each partner its share, enrolling
    /// the partners that are not members yet.
    pub async fn create_agreement(
        &self,
        program: &Value,
        shares: &[(&Value, i64)],
        extra: Value,
    ) -> Value {
        for (partner, _) in shares {
            if !self.is_member(program, partner).await {
                self.enroll(program, partner).await;
            }
        }
        let mut body = json!({
            "partners": shares.iter().map(|(p, bps)| json!({"partner_id": p["id"], "share_bps": bps})).collect::<Vec<_>>()
        });
        merge(&mut body, extra);
        let path = format!(
            "/v1/programs/{}/agreements",
            program["id"].as_str().unwrap()
        );
        let res = self.post(&path, &self.admin_token, &body).await;
        assert_status(res, StatusCode::CREATED).await
    }

    /// Whether `partner` is an active member of `program`.
    pub async fn is_member(&self, program: &Value, partner: &Value) -> bool {
        let path = format!(
            "/v1/partners/{}/enrollments?status=active",
            s(&partner["id"])
        );
        let list = assert_status(self.get(&path, &self.admin_token).await, StatusCode::OK).await;
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["program_id"] == program["id"])
    }

    pub async fn create_link(&self, agreement: &Value, extra: Value) -> Value {
        let mut body = json!({"agreement_id": agreement["id"]});
        merge(&mut body, extra);
        let res = self.post("/v1/links", &self.admin_token, &body).await;
        assert_status(res, StatusCode::CREATED).await
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A database that is dropped when the guard goes out of scope.
pub struct TempDatabase {
    pub name: String,
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let base = base_database_url();
        let name = self.name.clone();
        // Drop runs inside the test's runtime; the cleanup needs one of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut admin) =
                    PgConnection::connect(with_database(&base, "postgres").as_str()).await
                {
                    let _ = admin
                        .execute(sqlx::AssertSqlSafe(format!(
                            r#"drop database if exists "{name}" with (force)"#
                        )))
                        .await;
                }
            });
        })
        .join();
    }
}

/// Overwrites fields of `base` with those of `overrides`; a null removes one.
pub fn merge(base: &mut Value, overrides: Value) {
    if let (Some(b), Value::Object(o)) = (base.as_object_mut(), overrides) {
        for (k, v) in o {
            if v.is_null() {
                b.remove(&k);
            } else {
                b.insert(k, v);
            }
        }
    }
}

/// Asserts the status and returns the JSON body, printing it on a mismatch.
pub async fn assert_status(res: Response, status: StatusCode) -> Value {
    let actual = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = res.text().await.unwrap();
    assert_eq!(actual, status, "unexpected status; body: {text}");
    if text.is_empty() {
        return Value::Null;
    }
    if !actual.is_success() {
        assert!(
            content_type.starts_with("application/problem+json"),
            "an error must be problem+json, got {content_type:?}: {text}"
        );
    }
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// Asserts an RFC 9457 problem with this status, returning it.
pub async fn assert_problem(res: Response, status: StatusCode) -> Value {
    let body = assert_status(res, status).await;
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert!(
        body["type"].is_string() && body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

/// The fields named in a 422 problem.
pub fn invalid_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

impl TestApp {
    /// The code of a link, from its JSON.
    pub fn link_path(link: &Value) -> String {
        format!("/l/{}", s(&link["code"]))
    }

    /// Every click event in this test's stream shards, oldest first within a shard.
    pub async fn click_events(&self) -> Vec<mitra::clicks::ClickEvent> {
        // Events reach Redis in flushes; take what is queued first.
        self.state.click_log.flush().await;
        let mut events = Vec::new();
        for key in self.state.click_log.streams() {
            let mut conn = self.state.redis.conn();
            let mut tries = 0;
            // A connection broken while Redis was away fails once more, then reconnects.
            let reply: redis::streams::StreamRangeReply = loop {
                match redis::cmd("XRANGE")
                    .arg(key)
                    .arg("-")
                    .arg("+")
                    .query_async(&mut conn)
                    .await
                {
                    Ok(reply) => break reply,
                    Err(e) if tries < 20 => {
                        tries += 1;
                        let _ = e;
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    Err(e) => panic!("XRANGE {key}: {e}"),
                }
            };
            events.extend(reply.ids.iter().flat_map(|id| {
                let data: Vec<u8> = id.get("d").unwrap();
                let format: Option<String> = id.get("f");
                mitra::clicks::record::decode_entry(format.as_deref(), &data, |e| {
                    panic!("unreadable click event: {e}")
                })
            }));
        }
        events
    }

    /// A click consumer on this app's Redis and database.
    pub fn click_worker(
        &self,
        reclaim_idle: std::time::Duration,
    ) -> mitra::clicks::consumer::ClickConsumer {
        self.workers.click_consumer(reclaim_idle)
    }

    /// Runs click worker steps until the stream has nothing left for it.
    pub async fn drain_clicks(&self) {
        self.state.click_log.flush().await;
        let worker = self.click_worker(std::time::Duration::from_secs(30));
        while worker.step().await.unwrap() != mitra::background::Step::Idle {}
    }

    /// The metrics text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// The value of one sample line in Prometheus text, 0 when absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

/// A program, a partner, an agreement and a link: what most click tests need.
pub struct Fixture {
    pub program: Value,
    pub partner: Value,
    pub agreement: Value,
    pub link: Value,
}

pub async fn fixture(app: &TestApp, link_extra: Value) -> Fixture {
    let program = app.create_program().await;
    let partner = app.create_partner("Ayu").await;
    let agreement = app
        .create_agreement(&program, &[(&partner, 10000)], json!({}))
        .await;
    let link = app.create_link(&agreement, link_extra).await;
    Fixture {
        program,
        partner,
        agreement,
        link,
    }
}

/// A private redis-server this test can stop and start again.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
    dir: std::path::PathBuf,
}

impl RedisServer {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("mitra-test-redis-{}", unique_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            port,
            child: None,
            dir,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("redis-server did not start");
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestApp {
    /// Posts a conversion for `program`, signed with its webhook secret.
    pub async fn post_conversion(&self, program: &Value, body: &Value) -> Response {
        let raw = serde_json::to_vec(body).unwrap();
        let t = chrono::Utc::now().timestamp();
        let header = mitra::conversions::signature::header(s(&program["webhook_secret"]), t, &raw);
        self.post_conversion_raw(program, raw, Some(header)).await
    }

    /// Posts raw bytes with the given signature header (or none).
    pub async fn post_conversion_raw(
        &self,
        program: &Value,
        raw: Vec<u8>,
        signature: Option<String>,
    ) -> Response {
        let mut req = self
            .client
            .post(self.url(&format!("/v1/programs/{}/conversions", s(&program["id"]))))
            .header("content-type", "application/json")
            .body(raw);
        if let Some(sig) = signature {
            req = req.header("mitra-signature", sig);
        }
        req.send().await.unwrap()
    }

    pub fn attributor(&self) -> mitra::attribution::Attributor {
        self.workers.attributor()
    }

    /// Runs attribution until nothing is left to claim.
    pub async fn attribute(&self) {
        let worker = self.attributor();
        while worker.step().await.unwrap() != mitra::background::Step::Idle {}
    }

    /// A click id for `link` as if clicked `ago` before now.
    pub fn click_id_ago(&self, link: &Value, ago: chrono::Duration) -> String {
        let id = mitra::domain::LinkId::parse(s(&link["id"])).unwrap();
        let at = (chrono::Utc::now() - ago).timestamp_millis();
        mitra::domain::click_id::issue(&self.settings.link_keys, id, at, rand::random())
            .unwrap()
            .to_string()
    }

    /// The order's conversion, typed: what most money-path tests read.
    pub async fn order(&self, program: &Value, order_id: &str) -> Order {
        serde_json::from_value(self.conversion(program, order_id).await)
            .expect("an order as documented")
    }

    /// GET /v1/programs/{id}/conversions/{order_id} as the admin.
    pub async fn conversion(&self, program: &Value, order_id: &str) -> Value {
        let path = format!("/v1/programs/{}/conversions/{order_id}", s(&program["id"]));
        assert_status(self.get(&path, &self.admin_token).await, StatusCode::OK).await
    }
}

/// Commissions (an order's, or a quote's, as the API answers them) as
/// (kind, amount), sorted.
pub fn kinds_and_amounts(commissions: &Value) -> Vec<(String, i64)> {
    let mut all: Vec<(String, i64)> = commissions
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                s(&c["kind"]).to_owned(),
                c["amount_minor"].as_i64().unwrap(),
            )
        })
        .collect();
    all.sort();
    all
}

/// A sale body for `order` of `amount` minor units, in EUR, with a click id.
pub fn sale(order: &str, amount: i64, click_id: &str) -> Value {
    json!({"order_id": order, "event": "sale", "amount_minor": amount, "currency": "EUR", "click_id": click_id})
}

/// A `mitra` process started from the built binary, as an operator runs it.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub port: u16,
    pub base: String,
    /// Every line it printed (JSON logs), as they come.
    pub logs: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Starts `mitra <args>` with exactly `env` (plus JSON logs on a free
    /// port) and waits for the line announcing its port.
    pub fn start(args: &[&str], env: &[(&str, String)]) -> Self {
        use std::io::{BufRead, BufReader};
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mitra"));
        cmd.args(args).env_clear();
        for var in ["PATH", "HOME"] {
            if let Ok(v) = std::env::var(var) {
                cmd.env(var, v);
            }
        }
        cmd.env("MITRA_LISTEN", "127.0.0.1:0")
            .env("MITRA_LOG_FORMAT", "json");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("the mitra binary starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let port = loop {
            let line = lines
                .next()
                .expect("the server announces its port")
                .unwrap();
            logs.lock().unwrap().push(line.clone());
            let json: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if let Some(p) = json["port"].as_u64() {
                break p as u16;
            }
        };
        // Keep reading, so a chatty server never blocks on a full pipe.
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            logs,
        }
    }

    /// SIGKILL: no shutdown, no flush, nothing.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// `GET /v1/programs/{id}/conversions/{order_id}`, the fields tests read.
#[derive(Debug, serde::Deserialize)]
pub struct Order {
    pub status: String,
    pub reason: Option<String>,
    #[serde(default)]
    pub commissions: Vec<Commission>,
}

/// A commission inside an order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Commission {
    pub id: String,
    pub partner_id: String,
    pub amount_minor: i64,
    pub status: String,
    pub review: bool,
}

impl Order {
    /// The commission of `partner` (its JSON, as the API answers it).
    pub fn of(&self, partner: &Value) -> &Commission {
        self.commissions
            .iter()
            .find(|c| c.partner_id == s(&partner["id"]))
            .unwrap_or_else(|| panic!("no commission of {} in {self:?}", partner["id"]))
    }
}

/// Waits until `check` holds, at most `limit`; fails saying `what` did not.
pub async fn eventually<F, Fut>(limit: std::time::Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let since = std::time::Instant::now();
    while !check().await {
        assert!(since.elapsed() < limit, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The tests' HTTP client: no redirects followed, and no connection kept
/// idle for as long as the server keeps it (actix-web closes an idle
/// keep-alive connection after 5 s). A request sent on a connection the
/// server is closing fails with IncompleteMessage; on a loaded machine a
/// test can pause that long between two requests.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(std::time::Duration::from_secs(2))
}
