//! The redirect's view of a link, cached in process.
//!
//! A hit costs a hash lookup; a miss is one query, and concurrent misses for
//! the same link share it. Entries are refreshed after `TTL`; if Postgres is
//! down then, the old entry keeps serving, so shoppers are still redirected.
//! Every instance polls Postgres for changed links, programs, agreements
//! and memberships once a second and drops the links they touch (a changed
//! program's links, not the whole cache), so a disabled link stops
//! redirecting everywhere within a couple of seconds, with or without Redis.

use crate::domain::link_code;
use crate::domain::{LandingDomains, LinkId, ProgramId, SubIds};
use crate::metrics::Metrics;
use chrono::{DateTime, Utc};
use prometheus::IntCounter;
use quick_cache::sync::Cache;
use sqlx::PgPool;
use std::sync::{Arc, OnceLock};
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
    /// Where the shopper lands, split where the click id goes: the link's
    /// destination (or the program's default URL) with the link's sub ids
    /// added, built once so a redirect only concatenates.
    pub location: Location,
    pub landing: LandingDomains,
    pub sub_ids: SubIds,
    pub disabled: bool,
    /// The first code of this link whose signature was checked (see
    /// `LinkCache::verified`): the same code again needs no HMAC.
    verified_code: OnceLock<link_code::Decoded>,
    /// Counters of this link's program, resolved once (no label lookup per click).
    pub logged: IntCounter,
    pub bot: IntCounter,
    pub log_failed: IntCounter,
}

/// A landing URL as `head` + click id + `tail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    head: String,
    tail: String,
}

/// The query parameter carrying the click id to the landing page.
pub const CLICK_PARAM: &str = "mitra_click";

impl Location {
    /// Adds the sub ids the URL does not set itself, drops any click id it
    /// carried, and keeps the rest of its query and its fragment.
    pub fn new(mut url: Url, sub_ids: &SubIds) -> Self {
        let had_click = url.query_pairs().any(|(k, _)| k == CLICK_PARAM);
        if had_click {
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| k != CLICK_PARAM)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            url.set_query(None);
            if !kept.is_empty() {
                url.query_pairs_mut().extend_pairs(kept);
            }
        }
        let missing: Vec<(&str, &str)> = sub_ids
            .iter()
            .filter(|(k, _)| !url.query_pairs().any(|(q, _)| q == *k))
            .collect();
        if !missing.is_empty() {
            url.query_pairs_mut().extend_pairs(missing);
        }
        let tail = url.fragment().map(|f| format!("#{f}")).unwrap_or_default();
        url.set_fragment(None);
        let separator = match url.query() {
            None => "?",
            Some("") => "",
            Some(_) => "&",
        };
        Self {
            head: format!("{url}{separator}{CLICK_PARAM}="),
            tail,
        }
    }

    /// The full URL for one click.
    pub fn with_click(&self, click: &str) -> String {
        let mut s = String::with_capacity(self.head.len() + click.len() + self.tail.len());
        s.push_str(&self.head);
        s.push_str(click);
        s.push_str(&self.tail);
        s
    }
}

impl CachedLink {
    /// Remembers a code of this link that verified, so the next request
    /// carrying the same code is recognised without an HMAC.
    pub fn remember_verified(&self, code: &link_code::Decoded) {
        if code.link == self.id {
            let _ = self.verified_code.set(*code);
        }
    }

    /// Whether `code` is the code this link remembered as verified.
    fn is_verified(&self, code: &link_code::Decoded) -> bool {
        self.verified_code.get().is_some_and(|v| v.same_code(code))
    }
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

    /// The cached, fresh link a code names, when the code is one that
    /// verified before: the redirect's fast path, which then needs neither
    /// an HMAC nor Postgres. `None` says nothing; ask `link_code::check`
    /// and `get`.
    ///
    /// A remembered code passed `link_code::check` against the same key
    /// ring; an identical code (same link, key id and tag, compared in
    /// constant time) carries the same signature, so this refuses nothing
    /// the check accepts and accepts nothing it refuses.
    pub fn verified(&self, code: &link_code::Decoded) -> Option<Arc<CachedLink>> {
        let (entry, loaded) = self.cache.get(&code.link.get())?;
        let link = entry?;
        (loaded.elapsed() < TTL && link.is_verified(code)).then_some(link)
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
                   array(select pid from unnest(t.partner_ids) as pid
                         where exists (select 1 from enrollments e
                                       where e.program_id = l.program_id and e.partner_id = pid
                                         and e.status = 'active')) as "partner_ids!",
                   (l.created_by_partner_id is null or exists (
                        select 1 from enrollments e
                        where e.program_id = l.program_id and e.partner_id = l.created_by_partner_id
                          and e.status = 'active')) as "creator_active!"
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
        let sub_ids = SubIds::from_json(&row.sub_ids);
        let program_label: Arc<str> = row.program_id.to_string().into();
        // A link stops with its partners: when the partner who issued it,
        // or every partner of its agreement, is no longer a member.
        let disabled = row.disabled || !row.creator_active || row.partner_ids.is_empty();
        let clicks = &self.metrics.clicks;
        Ok(Some(Arc::new(CachedLink {
            id,
            program_id: row.program_id,
            logged: clicks.with_label_values(&[&*program_label, "logged"]),
            bot: clicks.with_label_values(&[&*program_label, "bot"]),
            log_failed: clicks.with_label_values(&[&*program_label, "log_failed"]),
            program_label,
            partner_ids: row.partner_ids,
            location: Location::new(destination, &sub_ids),
            landing: LandingDomains::from_db(row.landing_domains),
            sub_ids,
            disabled,
            verified_code: OnceLock::new(),
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
                   array(select id from programs
                         where updated_at > $1::timestamptz - make_interval(secs => $2)
                         union
                         select program_id from agreements
                         where updated_at > $1::timestamptz - make_interval(secs => $2)
                         union
                         select program_id from enrollments
                         where updated_at > $1::timestamptz - make_interval(secs => $2)) as "programs!"
            "#,
            since,
            POLL_OVERLAP_SECS
        )
        .fetch_one(&self.db)
        .await?;
        for id in row.links {
            self.invalidate(id);
        }
        self.invalidate_programs(&row.programs);
        Ok(row.now)
    }

    /// Drops the links of these programs: what a cached link holds besides
    /// its own row (the program's URLs and domains, its agreement's current
    /// partners, their memberships) all belongs to its program, so a change
    /// there touches no other program's links. (Clearing everything instead
    /// made every enrollment anywhere, several a second at scale, send every
    /// redirect to Postgres for the next five polls.)
    fn invalidate_programs(&self, programs: &[i64]) {
        if programs.is_empty() {
            return;
        }
        let programs: std::collections::HashSet<i64> = programs.iter().copied().collect();
        self.cache.retain(|_, (entry, _)| {
            entry
                .as_ref()
                .is_none_or(|link| !programs.contains(&link.program_id.get()))
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn subs(pairs: &[(&str, &str)]) -> SubIds {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        SubIds::parse(&map).unwrap()
    }

    fn location(url: &str, pairs: &[(&str, &str)]) -> String {
        Location::new(Url::parse(url).unwrap(), &subs(pairs)).with_click("CLICK")
    }

    #[test]
    fn the_click_id_joins_the_query_before_the_fragment() {
        assert_eq!(
            location("https://shop.example/", &[]),
            "https://shop.example/?mitra_click=CLICK"
        );
        assert_eq!(
            location("https://shop.example/p?x=1#top", &[]),
            "https://shop.example/p?x=1&mitra_click=CLICK#top"
        );
        assert_eq!(
            location("https://shop.example/p?#top", &[]),
            "https://shop.example/p?mitra_click=CLICK#top"
        );
    }

    #[test]
    fn sub_ids_are_added_unless_the_url_sets_them() {
        assert_eq!(
            location(
                "https://shop.example/p?sub1=own",
                &[("sub1", "link"), ("sub2", "a b")]
            ),
            "https://shop.example/p?sub1=own&sub2=a+b&mitra_click=CLICK"
        );
    }

    #[test]
    fn a_click_id_in_the_destination_is_replaced() {
        assert_eq!(
            location("https://shop.example/?mitra_click=forged&a=1", &[]),
            "https://shop.example/?a=1&mitra_click=CLICK"
        );
        assert_eq!(
            location("https://shop.example/?mitra_click=forged", &[]),
            "https://shop.example/?mitra_click=CLICK"
        );
    }
}
