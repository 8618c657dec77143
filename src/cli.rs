//! The `mitra` command line.

use crate::config::Settings;
use crate::conversions::signature as webhook_signature;
use crate::startup::{Application, Roles};
use crate::{db, demo, telemetry};
use clap::{Parser, Subcommand, ValueEnum};
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "mitra",
    version,
    about = "Affiliate link tracking and commission service"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations, then serve the API and run the workers.
    Serve {
        /// Which roles this process runs; scale out with several of each.
        #[arg(long, value_enum, default_value_t = Role::All)]
        role: Role,
    },
    /// Apply pending migrations and exit (for a deploy step or a Kubernetes Job).
    Migrate,
    /// Create a demo program, partner and link, print how to use them, and serve.
    Demo,
    /// Take a balance checkpoint now (workers take one every hour); for
    /// after a restore, or before timing balance reads.
    CheckpointBalances,
    /// Print a `Mitra-Signature` header value for a webhook body, or with
    /// `--standard` the three Standard Webhooks headers, one per line.
    Sign {
        /// The program's webhook secret (whsec_...).
        #[arg(long, env = "MITRA_WEBHOOK_SECRET")]
        secret: String,
        /// Unix time to sign with; now by default.
        #[arg(long)]
        timestamp: Option<i64>,
        /// Sign the Standard Webhooks way: print `webhook-id`,
        /// `webhook-timestamp` and `webhook-signature` headers.
        #[arg(long)]
        standard: bool,
        /// The message id to sign (`webhook-id`, with --standard); a new
        /// random one by default.
        #[arg(long, requires = "standard")]
        id: Option<String>,
        /// The exact body that will be sent.
        body: String,
    },
    /// Exit 0 when this host's mitra answers GET /healthz (for container health checks).
    Healthcheck,
    /// Print the OpenAPI 3.1 document, as served at GET /openapi.json.
    Openapi,
    /// Check a signed partner statement offline: signature, entry hashes, balances.
    ///
    /// Exit 0 when it verifies, 1 naming each problem when it does not, 2
    /// when a file cannot be read.
    VerifyStatement {
        /// The statement, as GET /v1/programs/{id}/partners/{partner_id}/statement answered it.
        file: std::path::PathBuf,
        /// The program's public key, base64 (GET /v1/programs/{id}/statement-key).
        #[arg(long)]
        public_key: String,
        /// An earlier statement that FILE continues: checks that nothing was removed between them.
        #[arg(long, requires = "chain")]
        previous: Option<std::path::PathBuf>,
        /// The chain proof from the earlier statement's head to FILE's
        /// (GET /v1/programs/{id}/chain?after_seq=&to_seq=).
        #[arg(long, requires = "previous")]
        chain: Option<std::path::PathBuf>,
    },
    /// Print a fresh entry for MITRA_LINK_KEYS.
    GenKey {
        /// Key id, 0 to 255; use a new one for each rotation.
        #[arg(long, default_value_t = 1)]
        id: u8,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Role {
    /// The API and every worker.
    All,
    /// Only the HTTP API (redirects, webhooks, admin).
    Api,
    /// Only the workers (clicks, attribution, lifecycle); serves /metrics too.
    Worker,
}

impl Role {
    fn roles(self) -> Roles {
        match self {
            Role::All => Roles::ALL,
            Role::Api => Roles::API,
            Role::Worker => Roles::WORKER,
        }
    }
}

pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Sign {
            secret,
            timestamp,
            standard,
            id,
            body,
        } => {
            let t = timestamp.unwrap_or_else(|| chrono::Utc::now().timestamp());
            if !standard {
                println!("{}", webhook_signature::header(&secret, t, body.as_bytes()));
                return ExitCode::SUCCESS;
            }
            let id =
                id.unwrap_or_else(|| format!("msg_{}", base62::encode(rand::random::<u128>())));
            let Some(signature) =
                webhook_signature::standard::try_signature(&secret, &id, t, body.as_bytes())
            else {
                eprintln!(
                    "error: the secret is not whsec_ followed by base64, as mitra issues them"
                );
                return ExitCode::from(2);
            };
            use webhook_signature::standard::{ID, SIGNATURE, TIMESTAMP};
            println!("{ID}: {id}\n{TIMESTAMP}: {t}\n{SIGNATURE}: {signature}");
            ExitCode::SUCCESS
        }
        Command::Healthcheck => healthcheck(),
        Command::Openapi => {
            println!("{}", crate::http::openapi::json());
            ExitCode::SUCCESS
        }
        Command::VerifyStatement {
            file,
            public_key,
            previous,
            chain,
        } => verify_statement(
            &file,
            &public_key,
            previous.as_deref().zip(chain.as_deref()),
        ),
        Command::GenKey { id } => {
            println!("{id}:{}", crate::domain::random_token());
            ExitCode::SUCCESS
        }
        Command::Migrate => {
            with_settings(|settings| async move {
                let pool = db::pool(&settings)?;
                db::migrate(&pool).await?;
                tracing::info!("migrations applied");
                Ok(())
            })
            .await
        }
        Command::CheckpointBalances => {
            with_settings(|settings| async move {
                let pool = db::pool(&settings)?;
                db::migrate(&pool).await?;
                let now = chrono::Utc::now();
                match crate::commissions::checkpoints::take(&pool, Some(now)).await? {
                    Some(through) => println!("balance checkpoint taken at {through}"),
                    None => println!("a checkpoint as recent exists already"),
                }
                Ok(())
            })
            .await
        }
        Command::Serve { role } => {
            with_settings(|settings| serve(settings, role.roles(), false)).await
        }
        Command::Demo => with_settings(|settings| serve(settings, Roles::ALL, true)).await,
    }
}

/// `mitra verify-statement`: offline, no configuration.
fn verify_statement(
    file: &std::path::Path,
    public_key: &str,
    continuing: Option<(&std::path::Path, &std::path::Path)>,
) -> ExitCode {
    use crate::statements::format::{self, ChainProof, SignedStatement};
    fn read<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T, String> {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&text)
            .map_err(|e| format!("{}: not a statement: {e}", path.display()))
    }
    let Some(key) = format::public_key(public_key) else {
        eprintln!("mitra: --public-key is not a base64 Ed25519 public key");
        return ExitCode::from(2);
    };
    let loaded = (|| -> Result<_, String> {
        let statement: SignedStatement = read(file)?;
        let earlier = match continuing {
            None => None,
            Some((previous, chain)) => Some((
                read::<SignedStatement>(previous)?,
                read::<ChainProof>(chain)?,
            )),
        };
        Ok((statement, earlier))
    })();
    let (statement, earlier) = match loaded {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mitra: {e}");
            return ExitCode::from(2);
        }
    };
    let problems = match &earlier {
        None => format::verify(&statement, &key),
        Some((previous, proof)) => format::verify_continuity(previous, &statement, proof, &key),
    };
    if problems.is_empty() {
        println!(
            "ok: statement of {} in {}: {} entr{}, chain links {} to {}, signed by key {}{}",
            statement.partner_id,
            statement.program_id,
            statement.entries.len(),
            if statement.entries.len() == 1 {
                "y"
            } else {
                "ies"
            },
            statement.previous_head.seq,
            statement.head.seq,
            statement.key_id,
            if earlier.is_some() {
                ", continuing the previous statement with nothing removed"
            } else {
                ""
            }
        );
        for b in &statement.closing {
            println!(
                "closing {}: pending {}, approved {}, paid {}",
                b.currency, b.pending_minor, b.approved_minor, b.paid_minor
            );
        }
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            println!("problem: {p}");
        }
        println!("FAILED: the statement does not verify");
        ExitCode::FAILURE
    }
}

/// Reads the settings (a bad one ends the start with one line naming it) and
/// runs `f`, turning its error into a non-zero exit.
async fn with_settings<F, Fut>(f: F) -> ExitCode
where
    F: FnOnce(Settings) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mitra: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    match f(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = ?e, "mitra stopped with an error");
            eprintln!("mitra: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings, roles: Roles, with_demo: bool) -> anyhow::Result<()> {
    let pool = db::pool(&settings)?;
    wait_for_postgres(&pool).await?;
    db::migrate(&pool).await?;
    let public_base = settings.public_base();
    let app = Application::build(settings, roles).await?;
    tracing::info!(port = app.port(), api = roles.api, workers = ?roles.workers, "mitra is listening");
    if with_demo {
        let seeded = demo::seed(&app.state()).await?;
        println!("{}", seeded.instructions(&public_base));
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    app.run_until_stopped(shutdown).await
}

/// Postgres may still be starting (a fresh container, a failover): wait up to 30 s.
async fn wait_for_postgres(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match sqlx::query("select 1").execute(pool).await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "waiting for Postgres");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(anyhow::anyhow!("Postgres did not answer within 30 s: {e}")),
        }
    }
}

/// GET /healthz on the port of MITRA_LISTEN, over loopback when it listens
/// on every address. Plain std: the check must work without a runtime.
fn healthcheck() -> ExitCode {
    use std::io::{Read, Write};
    let listen = std::env::var("MITRA_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let Ok(mut addr) = listen.trim().parse::<std::net::SocketAddr>() else {
        eprintln!("mitra: configuration error: MITRA_LISTEN: must be an address and port");
        return ExitCode::from(2);
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let timeout = Duration::from_secs(2);
    let answer = std::net::TcpStream::connect_timeout(&addr, timeout).and_then(|mut stream| {
        stream.set_read_timeout(Some(timeout))?;
        stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        Ok(head)
    });
    match answer {
        Ok(head) if head.starts_with(b"HTTP/1.") && &head[9..12] == b"200" => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!("mitra: /healthz did not answer 200");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("mitra: /healthz is unreachable on {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM or SIGINT starts a graceful stop; if that takes longer than 9.5 s
/// the process exits anyway, so an orchestrator's 10 s grace is never exceeded.
async fn stop_on_signal(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(9_500)).await;
    tracing::error!("graceful shutdown took too long; exiting");
    std::process::exit(1);
}
