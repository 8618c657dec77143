//! What a webhook needs to know about its program (currency, active
//! secrets), cached for a few seconds so a webhook costs one write, not a
//! read and a write.

use crate::domain::{Currency, ProgramId};
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
                     order by s.id desc) as "secrets!"
        from programs p where p.id = $1
        "#,
        program.get()
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| WebhookContext {
        currency: r.currency,
        secrets: r.secrets,
    }))
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
