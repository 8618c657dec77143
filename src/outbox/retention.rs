//! How long outgoing webhooks' history is kept: every event, delivery and
//! attempt was kept forever, so a program with an endpoint grew three
//! tables by several rows per sale for as long as it ran.
//!
//! Now an event goes, with its deliveries and their attempts, once it is
//! older than the retention (`MITRA_WEBHOOK_RETENTION_DAYS`, 30 by default),
//! none of its deliveries is pending (a disabled endpoint's wait for it), and
//! its newest delivery is older than the retention too (a replay is a
//! delivery of the same event, and keeps it). Undispatched events stay.
//!
//! The webhooks role runs the purge as a loop of its own beside delivery,
//! so a backlog of history never delays a delivery. It walks the events in
//! id order (their primary key; ids follow time), a page per statement, from
//! where it stopped, until it meets an event younger than the retention;
//! then it rests for `PURGE_EVERY`. Events it had to keep are walked past,
//! and looked at again when the walk starts over from the first id
//! (`REWALK_EVERY`, and at every start of the process). Several processes
//! may purge at once: a row two of them delete goes once, and neither fails.

use crate::background::{Every, Step};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Events looked at per statement.
const PAGE: i64 = 2_000;
/// How often a walk that has caught up looks for more.
const PURGE_EVERY: Duration = Duration::from_secs(10);
/// How often the walk starts over, to look again at the events it kept.
const REWALK_EVERY: Duration = Duration::from_secs(6 * 3600);

/// What one purge deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub events: i64,
    pub deliveries: i64,
    pub attempts: i64,
}

impl Purged {
    fn add(&mut self, other: Purged) {
        self.events += other.events;
        self.deliveries += other.deliveries;
        self.attempts += other.attempts;
    }
}

/// Where the walk is: the last event id behind it, when it began, and
/// whether it stopped at a page's end (more may follow at once).
struct Walk {
    after: i64,
    began: Instant,
    behind: bool,
}

pub struct Retention {
    db: PgPool,
    keep: chrono::Duration,
    every: Every,
    walk: Mutex<Walk>,
}

impl Retention {
    pub fn new(db: PgPool, keep: chrono::Duration) -> Self {
        Self {
            db,
            keep,
            every: Every::new(PURGE_EVERY),
            walk: Mutex::new(Walk {
                after: 0,
                began: Instant::now(),
                behind: false,
            }),
        }
    }

    /// One page of the walk, when it is behind or has rested long enough:
    /// busy while more pages wait. Working off a backlog (the first run on
    /// months of history), it rests as long as each page took, so it keeps
    /// Postgres busy half the time at most.
    pub async fn step(&self) -> anyhow::Result<Step> {
        let behind = self.walk.lock().unwrap_or_else(|p| p.into_inner()).behind;
        if !behind && !self.every.due() {
            return Ok(Step::Idle);
        }
        let started = Instant::now();
        let (purged, more) = self.page().await?;
        if more {
            tokio::time::sleep(started.elapsed()).await;
        }
        if purged != Purged::default() {
            tracing::debug!(
                events = purged.events,
                deliveries = purged.deliveries,
                attempts = purged.attempts,
                "purged webhook history past its retention"
            );
        }
        Ok(if more { Step::Busy } else { Step::Idle })
    }

    /// Walks on until it meets a younger event or reaches the last.
    pub async fn purge(&self) -> Result<Purged, sqlx::Error> {
        let mut purged = Purged::default();
        loop {
            let (page, more) = self.page().await?;
            purged.add(page);
            if !more {
                return Ok(purged);
            }
        }
    }

    /// Purges the next page of the walk; true if more pages may follow.
    async fn page(&self) -> Result<(Purged, bool), sqlx::Error> {
        let cutoff = Utc::now() - self.keep;
        let after = {
            let mut walk = self.walk.lock().unwrap_or_else(|p| p.into_inner());
            if !walk.behind && walk.began.elapsed() >= REWALK_EVERY {
                walk.after = 0;
                walk.began = Instant::now();
            }
            walk.after
        };
        let page = purge_page(&self.db, after, cutoff).await?;
        let (after, more) = match (page.first_young, page.last) {
            // Younger events from here on (or out of order with older ones
            // after them, which a later walk sees): stop before it.
            (Some(young), _) => (young - 1, false),
            (None, Some(last)) => (last, page.scanned == PAGE),
            (None, None) => (after, false),
        };
        let mut walk = self.walk.lock().unwrap_or_else(|p| p.into_inner());
        walk.after = after;
        walk.behind = more;
        Ok((page.purged, more))
    }
}

/// One page's outcome.
struct Page {
    purged: Purged,
    scanned: i64,
    /// The page's last event id.
    last: Option<i64>,
    /// Its first event younger than the retention.
    first_young: Option<i64>,
}

/// Looks at the `PAGE` events after id `after` and deletes those past the
/// retention (`cutoff`) with their deliveries and attempts, in one statement:
/// the foreign keys are checked at its end, when all three are gone.
async fn purge_page(db: &PgPool, after: i64, cutoff: DateTime<Utc>) -> Result<Page, sqlx::Error> {
    let row = sqlx::query!(
        r#"
        with page as (
            select id, created_at, dispatched from outbox_events
            where id > $1 order by id limit $2
        ), expired as (
            select p.id from page p
            where p.created_at < $3 and p.dispatched
              and not exists (select 1 from webhook_deliveries d
                              where d.event_id = p.id
                                and (d.status = 'pending' or d.created_at >= $3))
        ), attempts as (
            delete from webhook_attempts a using webhook_deliveries d, expired x
            where d.event_id = x.id and a.delivery_id = d.id
            returning 1
        ), deliveries as (
            delete from webhook_deliveries d using expired x where d.event_id = x.id
            returning 1
        ), events as (
            delete from outbox_events e using expired x where e.id = x.id
            returning 1
        )
        select (select count(*) from page) as "scanned!",
               (select max(id) from page) as last,
               (select min(id) from page where created_at >= $3) as first_young,
               (select count(*) from events) as "events!",
               (select count(*) from deliveries) as "deliveries!",
               (select count(*) from attempts) as "attempts!"
        "#,
        after,
        PAGE,
        cutoff
    )
    .fetch_one(db)
    .await?;
    Ok(Page {
        purged: Purged {
            events: row.events,
            deliveries: row.deliveries,
            attempts: row.attempts,
        },
        scanned: row.scanned,
        last: row.last,
        first_young: row.first_young,
    })
}
