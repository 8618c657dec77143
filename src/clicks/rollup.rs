//! Daily click roll-ups in Postgres, written in chunks.
//!
//! One call applies several click stream entries in one transaction. The
//! entries' ids are recorded in the same transaction, so an entry delivered
//! twice (a worker died before acknowledging it) is applied once. Counts are
//! added with `on conflict ... do update`, rows sorted by key so concurrent
//! workers lock in the same order and never deadlock.

use super::ClickEvent;
use super::bots::BotReason;
use chrono::{DateTime, NaiveDate};
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap, HashSet};

/// A stream entry: its id and the clicks it carries.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub events: Vec<ClickEvent>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub clicks: i64,
    pub unique: i64,
    pub bots: i64,
}

/// What one call did, for metrics and tests.
#[derive(Debug, Default)]
pub struct Report {
    /// Entries applied now; the others had been applied before.
    pub applied_entries: usize,
    pub skipped_entries: usize,
    /// Totals per program.
    pub per_program: BTreeMap<i64, Counts>,
    /// Events naming a link that does not exist (or not in that program): dropped.
    pub invalid_events: usize,
}

fn day_of(at_ms: i64) -> NaiveDate {
    DateTime::from_timestamp_millis(at_ms)
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

pub async fn apply(db: &PgPool, entries: &[Entry]) -> Result<Report, sqlx::Error> {
    let mut report = Report::default();
    if entries.is_empty() {
        return Ok(report);
    }
    let mut tx = db.begin().await?;
    let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
    let fresh: HashSet<String> = sqlx::query_scalar!(
        r#"insert into click_batches_applied (entry_id) select unnest($1::text[])
           on conflict do nothing returning entry_id"#,
        &ids
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    report.applied_entries = fresh.len();
    report.skipped_entries = entries.len() - fresh.len();
    let events: Vec<&ClickEvent> = entries
        .iter()
        .filter(|e| fresh.contains(&e.id))
        .flat_map(|e| e.events.iter())
        .collect();
    if events.is_empty() {
        tx.commit().await?;
        return Ok(report);
    }

    // Trust the database, not the event, about which program a link is in
    // and which partners exist: a bad event is dropped, not a poison pill.
    let link_ids: Vec<i64> = events
        .iter()
        .map(|e| e.link_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let programs: HashMap<i64, i64> = sqlx::query!(
        "select id, program_id from links where id = any($1)",
        &link_ids
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.id, r.program_id))
    .collect();
    let partner_ids: Vec<i64> = events
        .iter()
        .flat_map(|e| e.partner_ids.iter().copied())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let partners: HashSet<i64> =
        sqlx::query_scalar!("select id from partners where id = any($1)", &partner_ids)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
    let events: Vec<&ClickEvent> = events
        .into_iter()
        .filter(|e| {
            let ok = programs.get(&e.link_id) == Some(&e.program_id);
            if !ok {
                report.invalid_events += 1;
            }
            ok
        })
        .collect();

    // Unique: the first human click per (link, IP hash, day) ever recorded.
    let humans: Vec<&&ClickEvent> = events.iter().filter(|e| e.bot.is_none()).collect();
    let u_links: Vec<i64> = humans.iter().map(|e| e.link_id).collect();
    let u_hashes: Vec<String> = humans.iter().map(|e| e.ip_hash.clone()).collect();
    let u_days: Vec<NaiveDate> = humans.iter().map(|e| day_of(e.at_ms)).collect();
    let mut new_uniques: HashSet<(i64, String, NaiveDate)> = sqlx::query!(
        r#"insert into click_uniques (link_id, ip_hash, day)
           select * from unnest($1::bigint[], $2::text[], $3::date[])
           on conflict do nothing
           returning link_id, ip_hash, day"#,
        &u_links,
        &u_hashes,
        &u_days
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.link_id, r.ip_hash, r.day))
    .collect();

    let mut per_link: BTreeMap<(i64, NaiveDate), (i64, Counts)> = BTreeMap::new();
    let mut per_partner: BTreeMap<(i64, i64, NaiveDate), (i64, Counts)> = BTreeMap::new();
    let mut flagged: Vec<(&str, i64, BotReason, i64)> = Vec::new();
    for e in &events {
        let day = day_of(e.at_ms);
        let mut c = Counts::default();
        match e.bot {
            Some(reason) => {
                c.bots = 1;
                flagged.push((&e.click_id, e.link_id, reason, e.at_ms));
            }
            None => {
                c.clicks = 1;
                // Only the first of several clicks in this batch takes the unique.
                if new_uniques.remove(&(e.link_id, e.ip_hash.clone(), day)) {
                    c.unique = 1;
                }
            }
        }
        add(
            &mut per_link
                .entry((e.link_id, day))
                .or_insert((e.program_id, Counts::default()))
                .1,
            c,
        );
        for p in e.partner_ids.iter().filter(|p| partners.contains(p)) {
            add(
                &mut per_partner
                    .entry((*p, e.link_id, day))
                    .or_insert((e.program_id, Counts::default()))
                    .1,
                c,
            );
        }
        add(report.per_program.entry(e.program_id).or_default(), c);
    }

    let mut cols = Columns::default();
    for ((link, day), (program, c)) in &per_link {
        cols.push(*program, 0, *link, *day, c);
    }
    sqlx::query!(
        r#"
        insert into link_click_days (program_id, link_id, day, clicks, unique_clicks, bot_clicks)
        select * from unnest($1::bigint[], $2::bigint[], $3::date[], $4::bigint[], $5::bigint[], $6::bigint[])
        on conflict (link_id, day) do update set
            clicks = link_click_days.clicks + excluded.clicks,
            unique_clicks = link_click_days.unique_clicks + excluded.unique_clicks,
            bot_clicks = link_click_days.bot_clicks + excluded.bot_clicks
        "#,
        &cols.programs,
        &cols.links,
        &cols.days,
        &cols.clicks,
        &cols.unique,
        &cols.bots
    )
    .execute(&mut *tx)
    .await?;

    let mut cols = Columns::default();
    for ((partner, link, day), (program, c)) in &per_partner {
        cols.push(*program, *partner, *link, *day, c);
    }
    sqlx::query!(
        r#"
        insert into partner_click_days (program_id, partner_id, link_id, day, clicks, unique_clicks, bot_clicks)
        select * from unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::date[], $5::bigint[], $6::bigint[], $7::bigint[])
        on conflict (partner_id, link_id, day) do update set
            clicks = partner_click_days.clicks + excluded.clicks,
            unique_clicks = partner_click_days.unique_clicks + excluded.unique_clicks,
            bot_clicks = partner_click_days.bot_clicks + excluded.bot_clicks
        "#,
        &cols.programs,
        &cols.partners,
        &cols.links,
        &cols.days,
        &cols.clicks,
        &cols.unique,
        &cols.bots
    )
    .execute(&mut *tx)
    .await?;

    if !flagged.is_empty() {
        flagged.sort_by(|a, b| a.0.cmp(b.0));
        let click_ids: Vec<String> = flagged.iter().map(|f| f.0.to_owned()).collect();
        let links: Vec<i64> = flagged.iter().map(|f| f.1).collect();
        let reasons: Vec<String> = flagged.iter().map(|f| f.2.as_str().to_owned()).collect();
        let times: Vec<DateTime<chrono::Utc>> = flagged
            .iter()
            .map(|f| DateTime::from_timestamp_millis(f.3).unwrap_or_default())
            .collect();
        sqlx::query!(
            r#"insert into flagged_clicks (click_id, link_id, reason, clicked_at)
               select * from unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[])
               on conflict do nothing"#,
            &click_ids,
            &links,
            &reasons,
            &times
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(report)
}

fn add(total: &mut Counts, c: Counts) {
    total.clicks += c.clicks;
    total.unique += c.unique;
    total.bots += c.bots;
}

#[derive(Default)]
struct Columns {
    programs: Vec<i64>,
    partners: Vec<i64>,
    links: Vec<i64>,
    days: Vec<NaiveDate>,
    clicks: Vec<i64>,
    unique: Vec<i64>,
    bots: Vec<i64>,
}

impl Columns {
    fn push(&mut self, program: i64, partner: i64, link: i64, day: NaiveDate, c: &Counts) {
        self.programs.push(program);
        self.partners.push(partner);
        self.links.push(link);
        self.days.push(day);
        self.clicks.push(c.clicks);
        self.unique.push(c.unique);
        self.bots.push(c.bots);
    }
}

/// Deletes bookkeeping nobody needs any more: uniqueness of past days,
/// applied-entry ids long since trimmed from the stream, and bot flags older
/// than any attribution window.
pub async fn purge(db: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query!("delete from click_uniques where day < current_date - 1")
        .execute(db)
        .await?;
    sqlx::query!("delete from click_batches_applied where applied_at < now() - interval '7 days'")
        .execute(db)
        .await?;
    sqlx::query!("delete from flagged_clicks where clicked_at < now() - interval '400 days'")
        .execute(db)
        .await?;
    Ok(())
}
