//! The redirect's view of a link, cached in process.
//!
//! A hit costs a hash lookup; a miss is one query, and concurrent misses for
//! the same link share it. Entries are refreshed after `TTL`; if Postgres is
//! down then, the old entry keeps serving, so shoppers are still redirected.
//! Every instance polls Postgres for changed links (and agreements and
//! programs) once a second and drops what changed, so a disabled link stops
//! redirecting everywhere within a couple of seconds, with or without Redis.

use crate::domain::{LandingDomains, LinkId, ProgramId, SubIds};
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use prometheus::IntCounter;
use quick_cache::sync::Cache;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

/// How long an entry is trusted before it is read again.
pub const TTL: Duration = Duration::from_secs(60);
/// How often each instance asks Postgres what changed.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Changes are looked for this far behind the last poll, so a transaction
/// that committed late (its `now()` is its start) is not missed.
const POLL_OVERLAP_SECS: f64 = 5.0;

/// Everything a redirect needs, resolved once.
#[derive(Debug)]
pub struct CachedLink {
    pub id: LinkId,
    pub program_id: ProgramId,
    /// The program id as a metrics label, formatted once.
    pub program_label: Arc<str>,
    pub partner_ids: Vec<i64>,
    /// The link's destination, or the program's default URL.
    pub destination: Url,
    pub landing: LandingDomains,
    pub sub_ids: SubIds,
    pub disabled: bool,
    /// Counters of this link's program, resolved once (no label lookup per click).
    pub logged: IntCounter,
    pub bot: IntCounter,
}

type Entry = Option<Arc<CachedLink>>;

#[derive(Clone)]
pub struct LinkCache {
    cache: Arc<Cache<i64, (Entry, Instant)>>,
    db: PgPool,
    metrics: Arc<Metrics>,
}

impl LinkCache {
    pub fn new(db: PgPool, metrics: Arc<Metrics>, capacity: usize) -> Self {
        Self {
            cache: Arc::new(Cache::new(capacity.max(16))),
            db,
            metrics,
        }
    }

    /// The link, from the cache or Postgres; `Ok(None)` when no such link.
    pub async fn get(&self, id: LinkId) -> Result<Entry, sqlx::Error> {
        let key = id.get();
        if let Some((entry, loaded)) = self.cache.get(&key) {
            if loaded.elapsed() < TTL {
                return Ok(entry);
            }
            // Stale: refresh, but keep serving the old entry if Postgres is away.
            return match self.load(id).await {
                Ok(fresh) => {
                    self.cache.insert(key, (fresh.clone(), Instant::now()));
                    Ok(fresh)
                }
                Err(e) => {
                    tracing::warn!(error = %e, link = %id, "link refresh failed; serving the cached entry");
                    self.metrics.backend_error("postgres");
                    Ok(entry)
                }
            };
        }
        let (entry, _) = self
            .cache
            .get_or_insert_async(&key, async {
                self.load(id).await.map(|e| (e, Instant::now()))
            })
            .await?;
        Ok(entry)
    }

    pub fn invalidate(&self, id: i64) {
        self.cache.remove(&id);
    }

    pub fn clear(&self) {
        self.cache.clear();
    }

    async fn load(&self, id: LinkId) -> Result<Entry, sqlx::Error> {
        let row = sqlx::query!(
            r#"
            select l.program_id as "program_id: ProgramId", l.destination_url, l.sub_ids,
                   l.disabled_at is not null as "disabled!", p.default_url, p.landing_domains,
                   t.partner_ids as "partner_ids!"
            from links l
            join programs p on p.id = l.program_id
            join agreement_terms t on t.agreement_id = l.agreement_id and t.version = t.current_version
            where l.id = $1
            "#,
            id.get()
        )
        .fetch_optional(&self.db)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let destination = row.destination_url.as_deref().unwrap_or(&row.default_url);
        let Ok(destination) = Url::parse(destination) else {
            tracing::error!(link = %id, "stored destination does not parse");
            return Ok(None);
        };
        let program_label: Arc<str> = row.program_id.to_string().into();
        let clicks = &self.metrics.clicks;
        Ok(Some(Arc::new(CachedLink {
            id,
            program_id: row.program_id,
            logged: clicks.with_label_values(&[&*program_label, "logged"]),
            bot: clicks.with_label_values(&[&*program_label, "bot"]),
            program_label,
            partner_ids: row.partner_ids,
            destination,
            landing: LandingDomains::from_db(row.landing_domains),
            sub_ids: SubIds::from_json(&row.sub_ids),
            disabled: row.disabled,
        })))
    }

    /// Drops entries changed since the last poll. Returns the new watermark
    /// (database time), to pass to the next call.
    pub async fn poll_changes(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<DateTime<Utc>, sqlx::Error> {
        let Some(since) = since else {
            // First poll: only learn the database's clock.
            return sqlx::query_scalar!(r#"select now() as "now!""#)
                .fetch_one(&self.db)
                .await;
        };
        let row = sqlx::query!(
            r#"
            select now() as "now!",
                   array(select id from links
                         where updated_at > $1::timestamptz - make_interval(secs => $2)) as "links!",
                   exists(select 1 from programs
                          where updated_at > $1::timestamptz - make_interval(secs => $2))
                   or exists(select 1 from agreements
                             where updated_at > $1::timestamptz - make_interval(secs => $2)) as "others!"
            "#,
            since,
            POLL_OVERLAP_SECS
        )
        .fetch_one(&self.db)
        .await?;
        if row.others {
            // Programs and agreements change rarely; start afresh.
            self.clear();
        } else {
            for id in row.links {
                self.invalidate(id);
            }
        }
        Ok(row.now)
    }
}

/// Polls for changes every `POLL_INTERVAL` until `stop` fires.
pub async fn run_invalidation(cache: LinkCache, stop: tokio_util::sync::CancellationToken) {
    let mut since = None;
    loop {
        match cache.poll_changes(since).await {
            Ok(now) => since = Some(now),
            Err(e) => {
                // Without news from Postgres, entries still expire after TTL.
                tracing::warn!(error = %e, "link cache cannot poll for changes");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}
