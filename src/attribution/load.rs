//! Loading what attribution decides on: the batch it claims, and every fact
//! the database holds about it, in a few set-wise queries per batch.

use super::decide::{self, Claimed, Facts, Origin, ProgramTerms, Terms};
use super::fraud::{SaleAverages, Signals};
use super::months;
use crate::domain::click_id::{self, ClickId};
use crate::domain::{
    AgreementId, CommissionRules, ConversionId, ConversionStatus, Currency, EnrollmentStatus,
    Event, Item, KeyRing, LinkId, PartnerId, ProgramId,
};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;
use std::collections::HashMap;

/// Claims up to `batch` received conversions, oldest first, skipping those
/// another worker holds. The lock is on the queue's row
/// (`attribution_queue`, which triggers keep to the received conversions),
/// not the conversion's: the outcome's update takes that, and the
/// conversion's row stays free for the ranks other transactions reserve
/// for it meanwhile (`months`, whose references need a key-share lock).
/// The status is checked as well, so a row of the queue that disagreed
/// with its conversion could never have it decided twice.
///
/// The queue's ids are taken first, as an array the conversions are looked
/// up by: written as a join, the planner walked `conversions` in id order
/// and probed the queue for each, reading every conversion ever decided
/// (16 ms for 400 of 25,000, and growing with the table).
pub async fn claim(tx: &mut PgConnection, batch: i64) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as!(
        Claimed,
        r#"
        select c.id as "id: ConversionId", c.program_id as "program_id: ProgramId",
               c.event as "event: Event", c.order_id, c.amount_minor,
               c.currency as "currency: Currency", c.click_id, c.coupon, c.occurred_at,
               c.request_id, c.items as "items: Json<Vec<Item>>", c.subscription_id
        from conversions c
        where c.id = any (array(
                  select conversion_id from attribution_queue
                  order by conversion_id
                  limit $1
                  for update skip locked))
          and c.status = 'received'
        order by c.id
        "#,
        batch
    )
    .fetch_all(&mut *tx)
    .await
}

/// The facts about a batch of sales and leads.
pub async fn facts(
    tx: &mut PgConnection,
    rows: &[Claimed],
    keys: &KeyRing,
    averages: &SaleAverages,
) -> anyhow::Result<Facts> {
    let mut facts = Facts::default();
    if rows.is_empty() {
        return Ok(facts);
    }
    let mut ids: Vec<ProgramId> = rows.iter().map(|r| r.program_id).collect();
    ids.sort_unstable();
    ids.dedup();
    facts.programs = program_versions(tx, &ids).await?;
    let subscriptions: Vec<(ProgramId, &str)> = rows
        .iter()
        .filter(|r| r.event == Event::Sale)
        .filter_map(|r| Some((r.program_id, r.subscription_id.as_deref()?)))
        .collect();
    facts.subscriptions = first_payments(tx, &subscriptions).await?;
    facts.coupons = coupons(tx, rows).await?;
    // Click ids are verified offline: a forged one never reaches the database.
    facts.clicks = rows
        .iter()
        .filter_map(|r| Some((r.id, click_id::verify(keys, r.click_id.as_deref()?)?)))
        .collect();
    facts.links = links(tx, facts.clicks.values()).await?;
    // Which agreement each conversion would go to decides which terms and
    // signals to load; the same pure function decides again afterwards.
    let candidates: Vec<(&Claimed, decide::Candidate<'_>)> = rows
        .iter()
        .filter_map(|r| Some((r, decide::candidate(r, &facts).ok()?)))
        .collect();
    facts.terms = terms(tx, &candidates).await?;
    facts.members = members(tx, rows, &facts.terms).await?;
    let for_signals: Vec<(&Claimed, Option<&str>)> =
        candidates.iter().map(|(r, c)| (*r, c.click_id)).collect();
    facts.signals = Signals::load(tx, &for_signals, averages).await?;
    // The months themselves are locked apart, in `months::reserve`.
    facts.ranks = months::reserved(tx, rows).await?;
    Ok(facts)
}

/// Every version of each program's terms, oldest first.
pub(crate) async fn program_versions(
    tx: &mut PgConnection,
    ids: &[ProgramId],
) -> anyhow::Result<HashMap<ProgramId, Vec<ProgramTerms>>> {
    let ids: Vec<i64> = ids.iter().map(|p| p.get()).collect();
    let rows = sqlx::query!(
        r#"select program_id as "program_id: ProgramId", version, created_at, commission,
                  attribution_window_days, hold_days
           from program_versions where program_id = any($1)
           order by program_id, version"#,
        &ids
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut programs: HashMap<ProgramId, Vec<ProgramTerms>> = HashMap::new();
    for p in rows {
        let rules = CommissionRules::parse(&p.commission).map_err(|e| {
            anyhow::anyhow!(
                "stored rules of program {} version {} are invalid: {e}",
                p.program_id,
                p.version
            )
        })?;
        programs
            .entry(p.program_id)
            .or_default()
            .push(ProgramTerms {
                version: p.version,
                since: p.created_at,
                rules,
                window_days: p.attribution_window_days,
                hold_days: p.hold_days,
            });
    }
    Ok(programs)
}

/// The first payment of each (program, subscription).
pub(crate) async fn first_payments(
    tx: &mut PgConnection,
    wanted: &[(ProgramId, &str)],
) -> Result<HashMap<(ProgramId, String), Origin>, sqlx::Error> {
    let (programs, subs): (Vec<i64>, Vec<&str>) = wanted.iter().map(|(p, s)| (p.get(), *s)).unzip();
    if subs.is_empty() {
        return Ok(HashMap::new());
    }
    let found = sqlx::query!(
        r#"select distinct on (c.program_id, c.subscription_id)
                  c.id as "id: ConversionId", c.program_id as "program_id: ProgramId",
                  c.subscription_id as "subscription_id!", c.status as "status: ConversionStatus",
                  c.agreement_id as "agreement_id: AgreementId", c.link_id as "link_id: LinkId",
                  c.occurred_at
           from conversions c
           join unnest($1::bigint[], $2::text[]) as q(program_id, subscription_id)
             on c.program_id = q.program_id and c.subscription_id = q.subscription_id
           where c.event = 'sale'
           order by c.program_id, c.subscription_id, c.id"#,
        &programs,
        &subs as &[&str]
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(found
        .into_iter()
        .map(|r| {
            (
                (r.program_id, r.subscription_id),
                Origin {
                    id: r.id,
                    status: r.status,
                    agreement_id: r.agreement_id,
                    link_id: r.link_id,
                    occurred_at: r.occurred_at,
                },
            )
        })
        .collect())
}

async fn coupons(
    tx: &mut PgConnection,
    rows: &[Claimed],
) -> Result<HashMap<(ProgramId, String), AgreementId>, sqlx::Error> {
    let (programs, codes): (Vec<i64>, Vec<String>) = rows
        .iter()
        .filter_map(|r| {
            Some((
                r.program_id.get(),
                r.coupon.as_ref()?.trim().to_ascii_uppercase(),
            ))
        })
        .unzip();
    if codes.is_empty() {
        return Ok(HashMap::new());
    }
    let found = sqlx::query!(
        r#"select c.program_id as "program_id: ProgramId", c.code,
                  c.agreement_id as "agreement_id: AgreementId"
           from coupons c join unnest($1::bigint[], $2::text[]) as q(program_id, code)
             on c.program_id = q.program_id and c.code = q.code"#,
        &programs,
        &codes
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(found
        .into_iter()
        .map(|r| ((r.program_id, r.code), r.agreement_id))
        .collect())
}

/// Link -> (program, agreement).
async fn links(
    tx: &mut PgConnection,
    clicks: impl Iterator<Item = &ClickId>,
) -> Result<HashMap<LinkId, (ProgramId, AgreementId)>, sqlx::Error> {
    let mut ids: Vec<i64> = clicks.map(|c| c.link.get()).collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    ids.sort_unstable();
    ids.dedup();
    let rows = sqlx::query!(
        r#"select id as "id: LinkId", program_id as "program_id: ProgramId",
                  agreement_id as "agreement_id: AgreementId"
           from links where id = any($1)"#,
        &ids
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.id, (r.program_id, r.agreement_id)))
        .collect())
}

/// The memberships of every partner the batch's terms name.
async fn members(
    tx: &mut PgConnection,
    rows: &[Claimed],
    terms: &HashMap<ConversionId, Terms>,
) -> Result<HashMap<(ProgramId, PartnerId), decide::Membership>, sqlx::Error> {
    let mut pairs: Vec<(i64, i64)> = rows
        .iter()
        .filter_map(|r| Some((r, terms.get(&r.id)?)))
        .flat_map(|(r, t)| t.shares.iter().map(|(p, _)| (r.program_id.get(), p.get())))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    members_of(tx, pairs).await
}

/// The memberships of these (program, partner) pairs, where there are any.
pub(crate) async fn members_of(
    tx: &mut PgConnection,
    pairs: Vec<(i64, i64)>,
) -> Result<HashMap<(ProgramId, PartnerId), decide::Membership>, sqlx::Error> {
    if pairs.is_empty() {
        return Ok(HashMap::new());
    }
    let (programs, partners): (Vec<i64>, Vec<i64>) = pairs.into_iter().unzip();
    Ok(sqlx::query!(
        r#"select e.program_id as "program_id: ProgramId", e.partner_id as "partner_id!: PartnerId",
                  e.status as "status: EnrollmentStatus", e.ended_at
           from enrollments e
           join unnest($1::bigint[], $2::bigint[]) as q(program_id, partner_id)
             on e.program_id = q.program_id and e.partner_id = q.partner_id"#,
        &programs,
        &partners
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| ((r.program_id, r.partner_id), (r.status, r.ended_at)))
    .collect())
}

/// The terms in force when each conversion happened: the latest version
/// made at or before that moment (version 1 if it happened earlier).
async fn terms(
    tx: &mut PgConnection,
    candidates: &[(&Claimed, decide::Candidate<'_>)],
) -> anyhow::Result<HashMap<ConversionId, Terms>> {
    let wanted: Vec<(AgreementId, DateTime<Utc>)> = candidates
        .iter()
        .map(|(r, c)| (c.agreement_id, r.occurred_at))
        .collect();
    let found = terms_at(tx, &wanted).await?;
    Ok(candidates
        .iter()
        .zip(found)
        .filter_map(|((r, _), t)| Some((r.id, t?)))
        .collect())
}

/// The terms of each agreement in force at each time: the latest version
/// made at or before it (version 1 for anything earlier); `None` for an
/// agreement that does not exist.
pub(crate) async fn terms_at(
    tx: &mut PgConnection,
    wanted: &[(AgreementId, DateTime<Utc>)],
) -> anyhow::Result<Vec<Option<Terms>>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let agreements: Vec<i64> = wanted.iter().map(|w| w.0.get()).collect();
    let times: Vec<DateTime<Utc>> = wanted.iter().map(|w| w.1).collect();
    // First which version each conversion falls under (cheap: no partner
    // lists), then the terms of each distinct version once.
    let versions = sqlx::query!(
        r#"
        select q.idx as "idx!", v.version as "version!"
        from unnest($1::bigint[], $2::timestamptz[]) with ordinality as q(agreement_id, at, idx)
        cross join lateral (
            select v.version from agreement_versions v
            where v.agreement_id = q.agreement_id
            order by case when v.created_at <= q.at then v.version else -v.version end desc
            limit 1
        ) v
        "#,
        &agreements,
        &times
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut distinct: Vec<(i64, i32)> = versions
        .iter()
        .map(|v| (agreements[(v.idx - 1) as usize], v.version))
        .collect();
    distinct.sort_unstable();
    distinct.dedup();
    let rows = sqlx::query!(
        r#"
        select t.agreement_id as "agreement_id!", t.version as "version!", t.commission,
               t.partner_ids as "partner_ids!", t.share_bps as "share_bps!", t.valid_from, t.valid_until
        from agreement_terms t
        join unnest($1::bigint[], $2::int[]) as w(agreement_id, version)
          on t.agreement_id = w.agreement_id and t.version = w.version
        "#,
        &distinct.iter().map(|w| w.0).collect::<Vec<_>>(),
        &distinct.iter().map(|w| w.1).collect::<Vec<_>>(),
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut by_version: HashMap<(i64, i32), Terms> = HashMap::new();
    for r in rows {
        let rules = match &r.commission {
            Some(v) => CommissionRules::parse(v)
                .map_err(|e| anyhow::anyhow!("stored agreement rules invalid: {e}"))?,
            None => CommissionRules::default(),
        };
        let shares = r
            .partner_ids
            .iter()
            .zip(&r.share_bps)
            .map(|(p, s)| (PartnerId::from_db(*p), *s as u32))
            .collect();
        by_version.insert(
            (r.agreement_id, r.version),
            Terms {
                version: r.version,
                rules,
                shares,
                valid_from: r.valid_from,
                valid_until: r.valid_until,
            },
        );
    }
    let mut terms = vec![None; agreements.len()];
    for v in versions {
        let i = (v.idx - 1) as usize;
        terms[i] = by_version.get(&(agreements[i], v.version)).cloned();
    }
    Ok(terms)
}
