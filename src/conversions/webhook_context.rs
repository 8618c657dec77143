//! What a webhook needs to know about its program (currency, active
//! secrets, each platform's active secrets), cached for a few seconds so a
//! webhook costs one write, not a read and a write. Setting and rolling the
//! secrets is here too, so the cache and its source stay side by side.

use crate::domain::{Currency, Platform, ProgramId};
use quick_cache::sync::Cache;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A new or retired secret reaches other instances within this time; the
/// instance that rolled it knows at once.
pub const TTL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct WebhookContext {
    pub currency: Currency,
    /// Secrets that verify now: the current one, and during a rotation the
    /// previous one until it expires.
    pub secrets: Vec<String>,
    /// Each platform's secrets that verify now, newest first.
    pub platform_secrets: Vec<(Platform, String)>,
}

impl WebhookContext {
    /// The secrets `platform`'s webhooks verify with now (none: not set up).
    pub fn secrets_of(&self, platform: Platform) -> Vec<String> {
        self.platform_secrets
            .iter()
            .filter(|(p, _)| *p == platform)
            .map(|(_, s)| s.clone())
            .collect()
    }
}

/// A program's context (`None`: no such program) and when it was read.
type Cached = (Option<Arc<WebhookContext>>, Instant);

#[derive(Clone)]
pub struct WebhookContexts {
    cache: Arc<Cache<i64, Cached>>,
}

impl WebhookContexts {
    pub fn new() -> Self {
        Self {
            cache: Arc::new(Cache::new(10_000)),
        }
    }

    /// The program's context; `None` when there is no such program.
    pub async fn get(
        &self,
        db: &PgPool,
        program: ProgramId,
    ) -> Result<Option<Arc<WebhookContext>>, sqlx::Error> {
        if let Some((ctx, at)) = self.cache.get(&program.get())
            && at.elapsed() < TTL
        {
            return Ok(ctx);
        }
        let ctx = load(db, program).await?.map(Arc::new);
        self.cache
            .insert(program.get(), (ctx.clone(), Instant::now()));
        Ok(ctx)
    }

    pub fn forget(&self, program: ProgramId) {
        self.cache.remove(&program.get());
    }
}

impl Default for WebhookContexts {
    fn default() -> Self {
        Self::new()
    }
}

async fn load(db: &PgPool, program: ProgramId) -> Result<Option<WebhookContext>, sqlx::Error> {
    let row = sqlx::query!(
        r#"
        select p.currency as "currency: Currency",
               array(select s.secret from webhook_secrets s
                     where s.program_id = p.id and (s.expires_at is null or s.expires_at > now())
                     order by s.id desc) as "secrets!",
               array(select i.platform from integration_secrets i
                     where i.program_id = p.id and (i.expires_at is null or i.expires_at > now())
                     order by i.id desc) as "platforms!: Vec<Platform>",
               array(select i.secret from integration_secrets i
                     where i.program_id = p.id and (i.expires_at is null or i.expires_at > now())
                     order by i.id desc) as "platform_secrets!"
        from programs p where p.id = $1
        "#,
        program.get()
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| WebhookContext {
        currency: r.currency,
        secrets: r.secrets,
        platform_secrets: r.platforms.into_iter().zip(r.platform_secrets).collect(),
    }))
}

/// A platform's secret as a program last set it.
#[derive(Debug, Clone)]
pub struct PlatformSecret {
    pub platform: Platform,
    pub set_at: chrono::DateTime<chrono::Utc>,
}

/// Makes `secret` the one `platform`'s webhooks to `program` verify with;
/// the ones set before keep verifying for `grace` (a rotation at the
/// platform loses nothing in flight).
pub async fn set_platform_secret(
    db: &PgPool,
    program: ProgramId,
    platform: Platform,
    secret: &str,
    grace: Duration,
) -> Result<PlatformSecret, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query!(
        r#"update integration_secrets
           set expires_at = least(coalesce(expires_at, 'infinity'), now() + make_interval(secs => $3))
           where program_id = $1 and platform = $2"#,
        program.get(),
        platform.as_str(),
        grace.as_secs_f64()
    )
    .execute(&mut *tx)
    .await?;
    let set_at = sqlx::query_scalar!(
        r#"insert into integration_secrets (program_id, platform, secret) values ($1, $2, $3)
           returning created_at"#,
        program.get(),
        platform.as_str(),
        secret
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(PlatformSecret { platform, set_at })
}

/// The platforms `program` has a secret for now, and when it was set.
pub async fn platform_secrets(
    db: &PgPool,
    program: ProgramId,
) -> Result<Vec<PlatformSecret>, sqlx::Error> {
    sqlx::query_as!(
        PlatformSecret,
        r#"select distinct on (platform) platform as "platform: Platform", created_at as set_at
           from integration_secrets
           where program_id = $1 and (expires_at is null or expires_at > now())
           order by platform, id desc"#,
        program.get()
    )
    .fetch_all(db)
    .await
}

/// Makes a new secret current and lets the others expire after `grace`, so
/// the shop can switch without a failed webhook. Returns the new secret.
pub async fn roll_secret(
    db: &PgPool,
    program: ProgramId,
    grace: Duration,
) -> Result<String, sqlx::Error> {
    let secret = crate::domain::new_webhook_secret();
    let mut tx = db.begin().await?;
    sqlx::query!(
        r#"update webhook_secrets
           set expires_at = least(coalesce(expires_at, 'infinity'), now() + make_interval(secs => $2))
           where program_id = $1"#,
        program.get(),
        grace.as_secs_f64()
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "insert into webhook_secrets (program_id, secret) values ($1, $2)",
        program.get(),
        secret
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(secret)
}
