//! Booking: the one path by which a commission comes to exist, with its
//! ledger entry: a conversion's commission (`created`) exactly once per
//! conversion and partner; a milestone bonus (`bonus`) or a tier
//! re-rating (`tier_adjustment`) exactly once per agreement, partner, month
//! and milestone or step.

use super::ledger::{Entry, append};
use super::reasons::LedgerReason;
use crate::domain::{
    AgreementId, AppliedRule, Bucket, CommissionId, CommissionKind, ConversionId, Currency,
    FraudSignal, PartnerId, ProgramId, RuleSource,
};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;
use std::collections::{HashMap, HashSet};

/// A commission to book, computed by attribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCommission {
    pub conversion_id: ConversionId,
    pub program_id: ProgramId,
    pub partner_id: PartnerId,
    pub agreement_id: AgreementId,
    pub agreement_version: i32,
    /// The program terms version in force when the conversion happened.
    pub program_version: i32,
    pub kind: CommissionKind,
    /// Whose rule produced it.
    pub rule_source: RuleSource,
    /// Bonuses and tier adjustments: their month, and the milestone or step
    /// (`bonus:count:50`, `tier:2`) that makes them once only.
    pub period: Option<NaiveDate>,
    pub once_key: Option<String>,
    pub rule: AppliedRule,
    /// The amount the rule applied to.
    pub base_minor: i64,
    /// The commission of every partner of the conversion together.
    pub total_minor: i64,
    pub share_bps: i32,
    pub amount_minor: i64,
    pub currency: Currency,
    /// Held for a person's review: never approved by the clock.
    pub review: bool,
    pub fraud_reasons: Vec<FraudSignal>,
    pub approve_after: DateTime<Utc>,
}

/// Books commissions with their entries. A commission already booked (the
/// same conversion, partner and kind, or the same bonus or step of the same
/// month) is left as it is: booking is exactly-once whatever the workers
/// do. Returns those booked now.
///
/// Those already booked are looked up first and left out, and the rest are
/// inserted plainly: `on conflict do nothing` would make every row a
/// speculative insertion (a probe of each unique index, a token, and a
/// second WAL record to confirm it), about a fifth of the insert's time,
/// for a conflict that cannot happen in practice: a conversion is booked in
/// the transaction that holds its row (the worker's claim, a claim's lock),
/// and a bonus or step by the sale that reserved its rank. The unique
/// indexes still guarantee it: should two transactions ever book the same
/// commission at once, the second fails (23505) and rolls back, and its
/// retry finds the first's commission here.
pub async fn book(
    tx: &mut PgConnection,
    new: &[NewCommission],
) -> Result<Vec<(CommissionId, NewCommission)>, sqlx::Error> {
    let new = not_booked_yet(tx, new).await?;
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query!(
        r#"
        insert into commissions
            (conversion_id, program_id, partner_id, agreement_id, agreement_version, rule,
             base_minor, total_minor, share_bps, original_minor, amount_minor, currency, status,
             review, fraud_reasons, approve_after, program_version, kind, rule_source, period,
             once_key)
        select c, p, pa, a, v, r, b, t, s, amt, amt, cur, 'pending', rev,
               coalesce(string_to_array(nullif(fr, ''), ','), '{}'), aa, pv, k, rs, pe, ok
        from unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::int[], $6::jsonb[],
                    $7::bigint[], $8::bigint[], $9::int[], $10::bigint[], $11::text[], $12::bool[],
                    $13::text[], $14::timestamptz[], $15::int[], $16::text[], $17::text[],
                    $18::date[], $19::text[])
             as u(c, p, pa, a, v, r, b, t, s, amt, cur, rev, fr, aa, pv, k, rs, pe, ok)
        returning id as "id: CommissionId", conversion_id, partner_id, kind as "kind: CommissionKind",
                  once_key
        "#,
        &new.iter()
            .map(|n| n.conversion_id.get())
            .collect::<Vec<_>>(),
        &new.iter().map(|n| n.program_id.get()).collect::<Vec<_>>(),
        &new.iter().map(|n| n.partner_id.get()).collect::<Vec<_>>(),
        &new.iter().map(|n| n.agreement_id.get()).collect::<Vec<_>>(),
        &new.iter().map(|n| n.agreement_version).collect::<Vec<_>>(),
        &new.iter().map(|n| Json(&n.rule)).collect::<Vec<_>>() as &[Json<&AppliedRule>],
        &new.iter().map(|n| n.base_minor).collect::<Vec<_>>(),
        &new.iter().map(|n| n.total_minor).collect::<Vec<_>>(),
        &new.iter().map(|n| n.share_bps).collect::<Vec<_>>(),
        &new.iter().map(|n| n.amount_minor).collect::<Vec<_>>(),
        &new.iter().map(|n| n.currency.code()).collect::<Vec<_>>() as &[&str],
        &new.iter().map(|n| n.review).collect::<Vec<_>>(),
        &new.iter()
            .map(|n| {
                let words: Vec<&str> = n.fraud_reasons.iter().map(|f| f.as_str()).collect();
                words.join(",")
            })
            .collect::<Vec<_>>(),
        &new.iter().map(|n| n.approve_after).collect::<Vec<_>>(),
        &new.iter().map(|n| n.program_version).collect::<Vec<_>>(),
        &new.iter().map(|n| n.kind.as_str()).collect::<Vec<_>>() as &[&str],
        &new.iter().map(|n| n.rule_source.as_str()).collect::<Vec<_>>() as &[&str],
        &new.iter().map(|n| n.period).collect::<Vec<_>>() as &[Option<NaiveDate>],
        &new.iter().map(|n| n.once_key.as_deref()).collect::<Vec<_>>() as &[Option<&str>],
    )
    .fetch_all(&mut *tx)
    .await?;
    type Key<'a> = (i64, i64, CommissionKind, Option<&'a str>);
    let by_key: HashMap<Key<'_>, &NewCommission> = new.iter().map(|n| (key(n), *n)).collect();
    let booked: Vec<(CommissionId, NewCommission)> = rows
        .iter()
        .filter_map(|r| {
            let key = (r.conversion_id, r.partner_id, r.kind, r.once_key.as_deref());
            let n = by_key.get(&key)?;
            Some((r.id, (*n).clone()))
        })
        .collect();
    let entries: Vec<Entry> = booked
        .iter()
        .map(|(id, n)| Entry {
            commission_id: Some(*id),
            program_id: n.program_id,
            partner_id: n.partner_id,
            currency: n.currency,
            bucket: Bucket::Pending,
            amount_minor: n.amount_minor,
            kind: n.kind.booked_as(),
            conversion_id: Some(n.conversion_id),
            payout_id: None,
            actor: "worker".into(),
            reason: (!n.fraud_reasons.is_empty())
                .then(|| LedgerReason::HeldForReview(n.fraud_reasons.clone()).to_string()),
        })
        .collect();
    append(tx, &entries).await?;
    Ok(booked)
}

/// A commission's key among a conversion's: conversion, partner, kind and
/// milestone or step (`commissions_once`).
fn key(n: &NewCommission) -> (i64, i64, CommissionKind, Option<&str>) {
    (
        n.conversion_id.get(),
        n.partner_id.get(),
        n.kind,
        n.once_key.as_deref(),
    )
}

/// Those of `new` not booked yet, each once: left out are those stored
/// already under either unique key (`commissions_once`, and for a bonus or
/// step `commissions_once_per_period`) and a repeat within `new`.
async fn not_booked_yet<'a>(
    tx: &mut PgConnection,
    new: &'a [NewCommission],
) -> Result<Vec<&'a NewCommission>, sqlx::Error> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let mut conversions: Vec<i64> = new.iter().map(|n| n.conversion_id.get()).collect();
    conversions.sort_unstable();
    conversions.dedup();
    // A probe of `commissions_once` per conversion (`offset 0` keeps the
    // lateral subquery from being turned into a join): given the ids as one
    // array, the planner scanned the whole table while it was young (up to
    // 14 ms a batch at 50,000 commissions, against about 1 ms of probes).
    let stored = sqlx::query!(
        r#"select c.conversion_id as "conversion_id!", c.partner_id as "partner_id!",
                  c.kind as "kind!: CommissionKind", c.once_key
           from unnest($1::bigint[]) as k(id)
           cross join lateral (
               select conversion_id, partner_id, kind, once_key from commissions
               where conversion_id = k.id offset 0) c"#,
        &conversions
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut seen: HashSet<(i64, i64, CommissionKind, Option<String>)> = stored
        .into_iter()
        .map(|r| (r.conversion_id, r.partner_id, r.kind, r.once_key))
        .collect();
    // A bonus or step is once per agreement, partner and month, whichever
    // sale reached it.
    let once: Vec<&NewCommission> = new.iter().filter(|n| n.once_key.is_some()).collect();
    let mut seen_once: HashSet<(i64, i64, Option<NaiveDate>, String)> = HashSet::new();
    if !once.is_empty() {
        let stored = sqlx::query!(
            r#"select c.agreement_id, c.partner_id, c.period, c.once_key as "once_key!"
               from unnest($1::bigint[], $2::bigint[], $3::date[], $4::text[])
                    as k(agreement_id, partner_id, period, once_key)
               cross join lateral (
                   select c.agreement_id, c.partner_id, c.period, c.once_key from commissions c
                   where c.agreement_id = k.agreement_id and c.partner_id = k.partner_id
                     and c.period = k.period and c.once_key = k.once_key
                     and c.once_key is not null
               ) c"#,
            &once
                .iter()
                .map(|n| n.agreement_id.get())
                .collect::<Vec<_>>(),
            &once.iter().map(|n| n.partner_id.get()).collect::<Vec<_>>(),
            &once.iter().map(|n| n.period).collect::<Vec<_>>() as &[Option<NaiveDate>],
            &once
                .iter()
                .map(|n| n.once_key.as_deref())
                .collect::<Vec<_>>() as &[Option<&str>],
        )
        .fetch_all(&mut *tx)
        .await?;
        seen_once.extend(
            stored
                .into_iter()
                .map(|r| (r.agreement_id, r.partner_id, r.period, r.once_key)),
        );
    }
    Ok(new
        .iter()
        .filter(|n| {
            let (conversion, partner, kind, once_key) = key(n);
            let fresh = seen.insert((conversion, partner, kind, once_key.map(str::to_owned)));
            match once_key {
                // NULL periods never collide in the unique index.
                Some(once_key) if n.period.is_some() => {
                    let per_period = (n.agreement_id.get(), partner, n.period, once_key.to_owned());
                    seen_once.insert(per_period) && fresh
                }
                _ => fresh,
            }
        })
        .collect())
}
