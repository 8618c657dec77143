//! Daily click roll-ups in Postgres, written in chunks.
//!
//! The click consumer hands over a batch of clicks inside its transaction;
//! this module checks them against the links and partners that exist,
//! marks the unique ones, tallies them per link, partner and day (a pure
//! step), and adds the tallies with `on conflict ... do update`, rows sorted
//! by key so concurrent consumers lock in the same order and never deadlock.

use chrono::{DateTime, NaiveDate};
use sqlx::PgConnection;
use std::collections::{BTreeMap, HashMap, HashSet};

/// One click as the roll-ups see it.
#[derive(Debug, Clone, Copy)]
pub struct ClickFact<'a> {
    pub link_id: i64,
    pub program_id: i64,
    /// The partners of the link's agreement at click time.
    pub partner_ids: &'a [i64],
    /// Unix time of the click in milliseconds.
    pub at_ms: i64,
    pub ip_hash: &'a str,
    pub bot: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub clicks: i64,
    pub unique: i64,
    pub bots: i64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, c: Counts) {
        self.clicks += c.clicks;
        self.unique += c.unique;
        self.bots += c.bots;
    }
}

/// What one batch added.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Added {
    /// Totals per program.
    pub per_program: BTreeMap<i64, Counts>,
    /// Clicks naming a link that does not exist (or not in that program): dropped.
    pub invalid: usize,
}

/// The rows a batch adds to, keyed as the tables are.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// (link, day) -> (program, counts).
    pub per_link: BTreeMap<(i64, NaiveDate), (i64, Counts)>,
    /// (partner, link, day) -> (program, counts).
    pub per_partner: BTreeMap<(i64, i64, NaiveDate), (i64, Counts)>,
    pub per_program: BTreeMap<i64, Counts>,
}

/// The UTC day of a click.
pub fn day_of(at_ms: i64) -> NaiveDate {
    DateTime::from_timestamp_millis(at_ms)
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

/// Tallies clicks per link, partner and day. `new_uniques` holds the (link,
/// address hash, day) triples seen for the first time ever: the first human
/// click of each in the batch takes the unique, the rest do not. Partners
/// outside `partners` (ids that do not exist) get no rows.
pub fn tally<'a>(
    facts: &[ClickFact<'a>],
    mut new_uniques: HashSet<(i64, &'a str, NaiveDate)>,
    partners: &HashSet<i64>,
) -> Tally {
    let mut t = Tally::default();
    for f in facts {
        let day = day_of(f.at_ms);
        let c = if f.bot {
            Counts {
                bots: 1,
                ..Counts::default()
            }
        } else {
            Counts {
                clicks: 1,
                unique: i64::from(new_uniques.remove(&(f.link_id, f.ip_hash, day))),
                bots: 0,
            }
        };
        t.per_link
            .entry((f.link_id, day))
            .or_insert((f.program_id, Counts::default()))
            .1 += c;
        for p in f.partner_ids.iter().filter(|p| partners.contains(p)) {
            t.per_partner
                .entry((*p, f.link_id, day))
                .or_insert((f.program_id, Counts::default()))
                .1 += c;
        }
        *t.per_program.entry(f.program_id).or_default() += c;
    }
    t
}

/// Adds a batch of clicks to the roll-ups, inside the caller's transaction.
pub async fn add(tx: &mut PgConnection, facts: &[ClickFact<'_>]) -> Result<Added, sqlx::Error> {
    let (facts, invalid) = valid_facts(tx, facts).await?;
    if facts.is_empty() {
        return Ok(Added {
            invalid,
            ..Added::default()
        });
    }
    let partners = existing_partners(tx, &facts).await?;
    let new_uniques = first_seen(tx, &facts).await?;
    let new_uniques = new_uniques
        .iter()
        .map(|(link, hash, day)| (*link, hash.as_str(), *day))
        .collect();
    let t = tally(&facts, new_uniques, &partners);
    write(tx, &t).await?;
    Ok(Added {
        per_program: t.per_program,
        invalid,
    })
}

/// Trusts the database, not the event, about which program a link is in:
/// a bad event is dropped, not a poison pill.
async fn valid_facts<'a>(
    tx: &mut PgConnection,
    facts: &[ClickFact<'a>],
) -> Result<(Vec<ClickFact<'a>>, usize), sqlx::Error> {
    let link_ids: Vec<i64> = facts
        .iter()
        .map(|f| f.link_id)
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
    let (valid, invalid): (Vec<ClickFact<'a>>, Vec<_>) = facts
        .iter()
        .partition(|f| programs.get(&f.link_id) == Some(&f.program_id));
    Ok((valid, invalid.len()))
}

async fn existing_partners(
    tx: &mut PgConnection,
    facts: &[ClickFact<'_>],
) -> Result<HashSet<i64>, sqlx::Error> {
    let ids: Vec<i64> = facts
        .iter()
        .flat_map(|f| f.partner_ids.iter().copied())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    Ok(
        sqlx::query_scalar!("select id from partners where id = any($1)", &ids)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect(),
    )
}

/// Unique: the first human click per (link, address hash, day) ever
/// recorded. The rows are kept in the same transaction as the roll-up, so a
/// replayed batch cannot count a click unique twice.
async fn first_seen(
    tx: &mut PgConnection,
    facts: &[ClickFact<'_>],
) -> Result<Vec<(i64, String, NaiveDate)>, sqlx::Error> {
    let humans: Vec<&ClickFact<'_>> = facts.iter().filter(|f| !f.bot).collect();
    let links: Vec<i64> = humans.iter().map(|f| f.link_id).collect();
    let hashes: Vec<&str> = humans.iter().map(|f| f.ip_hash).collect();
    let days: Vec<NaiveDate> = humans.iter().map(|f| day_of(f.at_ms)).collect();
    Ok(sqlx::query!(
        r#"insert into click_uniques (link_id, ip_hash, day)
           select * from unnest($1::bigint[], $2::text[], $3::date[])
           on conflict do nothing
           returning link_id, ip_hash, day"#,
        &links,
        &hashes as &[&str],
        &days
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.link_id, r.ip_hash, r.day))
    .collect())
}

async fn write(tx: &mut PgConnection, t: &Tally) -> Result<(), sqlx::Error> {
    let mut cols = Columns::default();
    for ((link, day), (program, c)) in &t.per_link {
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
    for ((partner, link, day), (program, c)) in &t.per_partner {
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
    Ok(())
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

/// Deletes uniqueness of past days: a click can only be unique today.
pub async fn purge(tx: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!("delete from click_uniques where day < current_date - 1")
        .execute(&mut *tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: i64 = 86_400_000;
    const T0: i64 = 1_795_000_000_000;

    fn fact<'a>(
        link: i64,
        partners: &'a [i64],
        at_ms: i64,
        ip: &'a str,
        bot: bool,
    ) -> ClickFact<'a> {
        ClickFact {
            link_id: link,
            program_id: 9,
            partner_ids: partners,
            at_ms,
            ip_hash: ip,
            bot,
        }
    }

    #[test]
    fn humans_bots_and_uniques_are_counted_per_link_partner_and_day() {
        let facts = [
            fact(1, &[5, 6], T0, "a", false),
            fact(1, &[5, 6], T0 + 1, "a", false),
            fact(1, &[5, 6], T0 + 2, "b", true),
            fact(1, &[5, 6], T0 + DAY_MS, "a", false),
        ];
        let day0 = day_of(T0);
        let day1 = day_of(T0 + DAY_MS);
        // "a" is new on both days; partner 6 does not exist.
        let new: HashSet<(i64, &str, NaiveDate)> = [(1, "a", day0), (1, "a", day1)].into();
        let t = tally(&facts, new, &[5].into());
        assert_eq!(
            t.per_link[&(1, day0)],
            (
                9,
                Counts {
                    clicks: 2,
                    unique: 1,
                    bots: 1
                }
            )
        );
        assert_eq!(
            t.per_link[&(1, day1)].1,
            Counts {
                clicks: 1,
                unique: 1,
                bots: 0
            }
        );
        assert_eq!(t.per_partner[&(5, 1, day0)].1, t.per_link[&(1, day0)].1);
        assert!(!t.per_partner.keys().any(|k| k.0 == 6));
        assert_eq!(
            t.per_program[&9],
            Counts {
                clicks: 3,
                unique: 2,
                bots: 1
            }
        );
    }

    #[test]
    fn a_click_seen_before_is_never_unique() {
        let facts = [fact(1, &[], T0, "a", false)];
        let t = tally(&facts, HashSet::new(), &HashSet::new());
        assert_eq!(t.per_program[&9].unique, 0);
        assert_eq!(t.per_program[&9].clicks, 1);
    }
}
