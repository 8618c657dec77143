//! The attribution worker: claims received conversions, attributes each to
//! a coupon or a click, and books commissions, all in one transaction.
//!
//! Several workers may run: each claims a batch with `FOR UPDATE SKIP
//! LOCKED`, so no two see the same conversion, and a commission is unique
//! per (conversion, partner), so nothing is booked twice even if one did.
//! A worker killed mid-batch rolls back; its batch is claimed again.

pub mod fraud;
mod refunds;

use crate::background::{Every, Step};
use crate::commissions::booking::{self, NewCommission};
use crate::config::AttributionSettings;
use crate::domain::KeyRing;
use crate::domain::click_id;
use crate::domain::{CommissionRules, EarningEvent, ProgramId, Rule, allocate, apply_rate};
use crate::metrics::Metrics;
use crate::rollups::conversions::{self as rollup, Delta};
use chrono::{DateTime, Duration, Utc};
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use std::sync::Arc;

pub struct Attributor {
    db: PgPool,
    keys: KeyRing,
    metrics: Arc<Metrics>,
    settings: AttributionSettings,
    averages: fraud::SaleAverages,
    housekeeping: Every,
}

/// A claimed conversion.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub id: i64,
    pub program_id: i64,
    pub event: String,
    pub order_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub click_id: Option<String>,
    pub coupon: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// The webhook's request id: log lines about this conversion carry it.
    pub request_id: Option<String>,
}

/// What attribution decided for one conversion.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub id: i64,
    pub status: &'static str,
    pub reason: Option<String>,
    pub fraud: Vec<&'static str>,
    pub via: Option<&'static str>,
    pub link_id: Option<i64>,
    pub clicked_at: Option<DateTime<Utc>>,
    pub agreement_id: Option<i64>,
    pub agreement_version: Option<i32>,
    pub sale_id: Option<i64>,
}

impl Outcome {
    fn new(id: i64, status: &'static str, reason: Option<&str>) -> Self {
        Self {
            id,
            status,
            reason: reason.map(str::to_owned),
            ..Default::default()
        }
    }
}

/// The program settings attribution needs.
struct ProgramRow {
    rules: CommissionRules,
    window_days: i32,
    hold_days: i32,
}

/// An agreement's terms in force at a moment.
#[derive(Debug, Clone)]
struct Terms {
    version: i32,
    rules: CommissionRules,
    partner_ids: Vec<i64>,
    share_bps: Vec<i32>,
    valid_from: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
}

/// Where a conversion's credit goes before terms are applied.
struct Candidate {
    via: &'static str,
    agreement_id: i64,
    link_id: Option<i64>,
    clicked_at: Option<DateTime<Utc>>,
    click_id: Option<String>,
}

impl Attributor {
    pub fn new(
        db: PgPool,
        keys: KeyRing,
        metrics: Arc<Metrics>,
        settings: AttributionSettings,
    ) -> Self {
        Self {
            db,
            keys,
            metrics,
            settings,
            averages: fraud::SaleAverages::default(),
            housekeeping: Every::new(std::time::Duration::from_secs(5)),
        }
    }

    /// One batch: claim, attribute, book, commit. Busy when it found work.
    pub async fn step(&self) -> anyhow::Result<Step> {
        self.housekeeping_if_due().await?;
        let mut tx = self.db.begin().await?;
        let claimed = sqlx::query_as!(
            Claimed,
            r#"
            select id, program_id, event, order_id, amount_minor, currency, click_id, coupon, occurred_at,
                   request_id
            from conversions
            where status = 'received'
            order by id
            limit $1
            for update skip locked
            "#,
            self.settings.batch
        )
        .fetch_all(&mut *tx)
        .await?;
        if claimed.is_empty() {
            tx.commit().await?;
            return Ok(Step::Idle);
        }
        let (earning, refund_rows): (Vec<Claimed>, Vec<Claimed>) =
            claimed.into_iter().partition(|c| c.event != "refund");
        let (mut outcomes, bookings, mut deltas) = self.attribute(&mut tx, &earning).await?;
        let booked = booking::book(&mut tx, &bookings).await?;
        let in_batch: Vec<i64> = earning.iter().map(|c| c.id).collect();
        let refund_report = refunds::apply(&mut tx, &refund_rows, &in_batch).await?;
        outcomes.extend(refund_report.outcomes.iter().cloned());
        deltas.extend(refund_report.deltas.iter().copied());
        rollup::add(&mut tx, &deltas).await?;
        write_outcomes(&mut tx, &outcomes).await?;
        // Refunds that arrived before these sales can now be applied.
        requeue_waiting_refunds(&mut tx).await?;
        tx.commit().await?;

        self.count(&earning, &outcomes, &booked, &refund_report);
        // One line per conversion, under the webhook's request id: the trace
        // from "received" to "booked". Debug, for the volume.
        if tracing::enabled!(tracing::Level::DEBUG) {
            let request_ids: HashMap<i64, &Option<String>> = earning
                .iter()
                .chain(refund_rows.iter())
                .map(|c| (c.id, &c.request_id))
                .collect();
            for o in &outcomes {
                tracing::debug!(
                    conversion = %crate::domain::ConversionId::from_db(o.id),
                    request_id = request_ids.get(&o.id).and_then(|r| r.as_deref()).unwrap_or(""),
                    status = o.status,
                    reason = o.reason.as_deref().unwrap_or(""),
                    fraud = ?o.fraud,
                    "conversion processed"
                );
            }
        }
        tracing::info!(
            claimed = earning.len() + refund_rows.len(),
            commissions = booked.len(),
            "attribution batch committed"
        );
        Ok(Step::Busy)
    }

    async fn attribute(
        &self,
        tx: &mut PgConnection,
        rows: &[Claimed],
    ) -> anyhow::Result<(Vec<Outcome>, Vec<NewCommission>, Vec<Delta>)> {
        if rows.is_empty() {
            return Ok((Vec::new(), Vec::new(), Vec::new()));
        }
        let programs = load_programs(tx, rows).await?;
        let coupons = load_coupons(tx, rows).await?;
        // Click ids are verified offline: a forged one never reaches the database.
        let clicks: HashMap<i64, click_id::ClickId> = rows
            .iter()
            .filter_map(|r| Some((r.id, click_id::verify(&self.keys, r.click_id.as_deref()?)?)))
            .collect();
        let links = load_links(tx, clicks.values().map(|c| c.link.get()).collect()).await?;

        let mut outcomes = Vec::with_capacity(rows.len());
        let mut candidates: Vec<(&Claimed, Candidate)> = Vec::new();
        for row in rows {
            let Some(program) = programs.get(&row.program_id) else {
                outcomes.push(Outcome::new(row.id, "rejected", Some("unknown_program")));
                continue;
            };
            // A coupon beats a click: influencer codes are how merchants expect it.
            if let Some(code) = &row.coupon {
                let key = (row.program_id, code.trim().to_ascii_uppercase());
                if let Some(agreement_id) = coupons.get(&key) {
                    candidates.push((
                        row,
                        Candidate {
                            via: "coupon",
                            agreement_id: *agreement_id,
                            link_id: None,
                            clicked_at: None,
                            click_id: None,
                        },
                    ));
                    continue;
                }
                if row.click_id.is_none() {
                    outcomes.push(Outcome::new(row.id, "unattributed", Some("unknown_coupon")));
                    continue;
                }
            }
            let Some(raw_click) = &row.click_id else {
                outcomes.push(Outcome::new(row.id, "unattributed", Some("no_click")));
                continue;
            };
            let Some(click) = clicks.get(&row.id) else {
                outcomes.push(Outcome::new(row.id, "rejected", Some("invalid_click")));
                continue;
            };
            let Some((link_program, agreement_id)) = links.get(&click.link.get()) else {
                outcomes.push(Outcome::new(row.id, "rejected", Some("invalid_click")));
                continue;
            };
            if *link_program != row.program_id {
                // Signed by us, but for another program's link.
                outcomes.push(Outcome::new(row.id, "rejected", Some("invalid_click")));
                continue;
            }
            let clicked_at = click.clicked_at();
            if clicked_at > row.occurred_at + Duration::seconds(60) {
                outcomes.push(Outcome::new(
                    row.id,
                    "rejected",
                    Some("click_after_conversion"),
                ));
                continue;
            }
            if row.occurred_at - clicked_at > Duration::days(i64::from(program.window_days)) {
                outcomes.push(Outcome::new(row.id, "unattributed", Some("outside_window")));
                continue;
            }
            candidates.push((
                row,
                Candidate {
                    via: "click",
                    agreement_id: *agreement_id,
                    link_id: Some(click.link.get()),
                    clicked_at: Some(clicked_at),
                    click_id: Some(raw_click.clone()),
                },
            ));
        }

        let terms = load_terms(tx, &candidates).await?;
        let signals =
            fraud::Signals::load(tx, &candidates_for_fraud(&candidates), &self.averages).await?;
        let mut bookings = Vec::new();
        let mut deltas = Vec::new();
        let now = Utc::now();
        for (i, (row, cand)) in candidates.iter().enumerate() {
            let program = &programs[&row.program_id];
            let mut outcome = Outcome {
                id: row.id,
                via: Some(cand.via),
                link_id: cand.link_id,
                clicked_at: cand.clicked_at,
                agreement_id: Some(cand.agreement_id),
                ..Default::default()
            };
            let Some(t) = &terms[i] else {
                outcome.status = "unattributed";
                outcome.reason = Some("agreement_missing".into());
                outcomes.push(outcome);
                continue;
            };
            outcome.agreement_version = Some(t.version);
            let active = t.valid_from.is_none_or(|f| row.occurred_at >= f)
                && t.valid_until.is_none_or(|u| row.occurred_at < u);
            if !active {
                outcome.status = "unattributed";
                outcome.reason = Some("agreement_inactive".into());
                outcomes.push(outcome);
                continue;
            }
            if row.event == "lead" && signals.is_repeat_lead(row.id, cand.click_id.as_deref()) {
                outcome.status = "rejected";
                outcome.reason = Some("duplicate".into());
                outcomes.push(outcome);
                continue;
            }
            outcome.fraud = signals.check(
                row,
                cand.click_id.as_deref(),
                cand.clicked_at,
                &self.settings.fraud,
            );
            outcome.status = "attributed";
            let day_delta = |partner: Option<i64>, commission: i64| Delta {
                program: row.program_id,
                partner,
                link: cand.link_id.unwrap_or(0),
                day: row.occurred_at.date_naive(),
                conversions: 1,
                revenue_minor: if row.event == "sale" {
                    row.amount_minor
                } else {
                    0
                },
                commission_minor: commission,
            };
            let event = if row.event == "sale" {
                EarningEvent::Sale
            } else {
                EarningEvent::Lead
            };
            let Some(rule) = t.rules.overriding(&program.rules).get(event) else {
                outcome.reason = Some("no_rule".into());
                deltas.push(day_delta(None, 0));
                outcomes.push(outcome);
                continue;
            };
            let total = match rule {
                Rule::PercentBps(bps) => apply_rate(row.amount_minor, bps),
                Rule::FlatMinor(flat) => Ok(flat),
            };
            let weights: Vec<u32> = t.share_bps.iter().map(|s| *s as u32).collect();
            let parts = total.and_then(|total| Ok((total, allocate(total, &weights)?)));
            let Ok((total, parts)) = parts else {
                outcome.status = "rejected";
                outcome.reason = Some("amount_overflow".into());
                outcomes.push(outcome);
                continue;
            };
            let rule_json = serde_json::json!({"event": row.event, "rule": rule_value(rule)});
            deltas.push(day_delta(None, total));
            for ((partner, share), amount) in t.partner_ids.iter().zip(&t.share_bps).zip(parts) {
                if amount == 0 {
                    continue;
                }
                deltas.push(day_delta(Some(*partner), amount));
                bookings.push(NewCommission {
                    conversion_id: row.id,
                    program_id: row.program_id,
                    partner_id: *partner,
                    agreement_id: cand.agreement_id,
                    agreement_version: t.version,
                    rule: rule_json.clone(),
                    base_minor: row.amount_minor,
                    total_minor: total,
                    share_bps: *share,
                    amount_minor: amount,
                    currency: row.currency.clone(),
                    review: !outcome.fraud.is_empty(),
                    fraud_reasons: outcome.fraud.clone(),
                    approve_after: now + Duration::days(i64::from(program.hold_days)),
                });
            }
            outcomes.push(outcome);
        }
        Ok((outcomes, bookings, deltas))
    }

    fn count(
        &self,
        earning: &[Claimed],
        outcomes: &[Outcome],
        booked: &[(i64, NewCommission)],
        refunds: &refunds::Report,
    ) {
        let m = &self.metrics;
        let by_id: HashMap<i64, &Outcome> = outcomes.iter().map(|o| (o.id, o)).collect();
        for row in earning {
            let Some(o) = by_id.get(&row.id) else {
                continue;
            };
            let label = ProgramId::from_db(row.program_id).to_string();
            let outcome = if o.status == "attributed" && !o.fraud.is_empty() {
                "fraud_suspected"
            } else {
                o.status
            };
            m.conversions
                .with_label_values(&[&label, &row.event, outcome])
                .inc();
            if o.status == "attributed" && row.event == "sale" {
                m.revenue_minor
                    .with_label_values(&[&label, &row.currency])
                    .inc_by(row.amount_minor as u64);
            }
        }
        for (_, c) in booked {
            let label = ProgramId::from_db(c.program_id).to_string();
            m.commission_minor
                .with_label_values(&[&label, &c.currency, "pending"])
                .inc_by(c.amount_minor as u64);
            m.commissions.with_label_values(&[&label, "pending"]).inc();
        }
        for (program, currency, reversed, count) in &refunds.reversed {
            let label = ProgramId::from_db(*program).to_string();
            m.commission_minor
                .with_label_values(&[&label, currency, "reversed"])
                .inc_by(*reversed as u64);
            m.commissions
                .with_label_values(&[&label, "reversed"])
                .inc_by(*count);
        }
        for o in &refunds.outcomes {
            if let Some(program) = refunds.programs.get(&o.id) {
                let label = ProgramId::from_db(*program).to_string();
                m.conversions
                    .with_label_values(&[&label, "refund", o.status])
                    .inc();
            }
        }
    }

    async fn housekeeping_if_due(&self) -> anyhow::Result<()> {
        if !self.housekeeping.due() {
            return Ok(());
        }
        let mut conn = self.db.acquire().await?;
        requeue_waiting_refunds(&mut conn).await?;
        self.measure().await
    }

    /// Sets the attribution queue gauges.
    pub async fn measure(&self) -> anyhow::Result<()> {
        let row = sqlx::query!(
            r#"select count(*) as "depth!", extract(epoch from now() - min(received_at))::float8 as age
               from conversions where status = 'received'"#
        )
        .fetch_one(&self.db)
        .await?;
        self.metrics
            .queue_depth
            .with_label_values(&["attribution"])
            .set(row.depth);
        self.metrics
            .queue_oldest_age
            .with_label_values(&["attribution"])
            .set(row.age.unwrap_or(0.0).max(0.0));
        Ok(())
    }
}

fn rule_value(rule: Rule) -> serde_json::Value {
    match rule {
        Rule::PercentBps(bps) => serde_json::json!({"percent_bps": bps.get()}),
        Rule::FlatMinor(flat) => serde_json::json!({"flat_minor": flat}),
    }
}

fn candidates_for_fraud<'a>(
    candidates: &'a [(&'a Claimed, Candidate)],
) -> Vec<(&'a Claimed, Option<&'a str>)> {
    candidates
        .iter()
        .map(|(row, c)| (*row, c.click_id.as_deref()))
        .collect()
}

async fn load_programs(
    tx: &mut PgConnection,
    rows: &[Claimed],
) -> anyhow::Result<HashMap<i64, ProgramRow>> {
    let mut ids: Vec<i64> = rows.iter().map(|r| r.program_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let programs = sqlx::query!(
        "select id, commission, attribution_window_days, hold_days from programs where id = any($1)",
        &ids
    )
    .fetch_all(&mut *tx)
    .await?;
    programs
        .into_iter()
        .map(|p| {
            let rules = CommissionRules::parse(&p.commission).map_err(|e| {
                anyhow::anyhow!("stored rules of program {} are invalid: {e}", p.id)
            })?;
            Ok((
                p.id,
                ProgramRow {
                    rules,
                    window_days: p.attribution_window_days,
                    hold_days: p.hold_days,
                },
            ))
        })
        .collect()
}

async fn load_coupons(
    tx: &mut PgConnection,
    rows: &[Claimed],
) -> Result<HashMap<(i64, String), i64>, sqlx::Error> {
    let (programs, codes): (Vec<i64>, Vec<String>) = rows
        .iter()
        .filter_map(|r| Some((r.program_id, r.coupon.as_ref()?.trim().to_ascii_uppercase())))
        .unzip();
    if codes.is_empty() {
        return Ok(HashMap::new());
    }
    let found = sqlx::query!(
        r#"select c.program_id, c.code, c.agreement_id
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

/// Link id -> (program, agreement).
async fn load_links(
    tx: &mut PgConnection,
    ids: Vec<i64>,
) -> Result<HashMap<i64, (i64, i64)>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query!(
        "select id, program_id, agreement_id from links where id = any($1)",
        &ids
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.id, (r.program_id, r.agreement_id)))
        .collect())
}

/// The terms in force when each conversion happened: the latest version
/// made at or before that moment (version 1 if it happened earlier).
async fn load_terms(
    tx: &mut PgConnection,
    candidates: &[(&Claimed, Candidate)],
) -> anyhow::Result<Vec<Option<Terms>>> {
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let agreements: Vec<i64> = candidates.iter().map(|(_, c)| c.agreement_id).collect();
    let times: Vec<DateTime<Utc>> = candidates.iter().map(|(r, _)| r.occurred_at).collect();
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
    let mut wanted: Vec<(i64, i32)> = versions
        .iter()
        .map(|v| (agreements[(v.idx - 1) as usize], v.version))
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let rows = sqlx::query!(
        r#"
        select t.agreement_id as "agreement_id!", t.version as "version!", t.commission,
               t.partner_ids as "partner_ids!", t.share_bps as "share_bps!", t.valid_from, t.valid_until
        from agreement_terms t
        join unnest($1::bigint[], $2::int[]) as w(agreement_id, version)
          on t.agreement_id = w.agreement_id and t.version = w.version
        "#,
        &wanted.iter().map(|w| w.0).collect::<Vec<_>>(),
        &wanted.iter().map(|w| w.1).collect::<Vec<_>>(),
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
        by_version.insert(
            (r.agreement_id, r.version),
            Terms {
                version: r.version,
                rules,
                partner_ids: r.partner_ids,
                share_bps: r.share_bps,
                valid_from: r.valid_from,
                valid_until: r.valid_until,
            },
        );
    }
    let mut terms: Vec<Option<Terms>> = vec![None; candidates.len()];
    for v in versions {
        let i = (v.idx - 1) as usize;
        if let Some(slot) = terms.get_mut(i) {
            *slot = by_version.get(&(agreements[i], v.version)).cloned();
        }
    }
    Ok(terms)
}

async fn write_outcomes(tx: &mut PgConnection, outcomes: &[Outcome]) -> Result<(), sqlx::Error> {
    if outcomes.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        r#"
        update conversions c set
            status = u.status, reason = u.reason,
            fraud_reasons = coalesce(string_to_array(nullif(u.fraud, ''), ','), '{}'),
            attributed_via = u.via, link_id = u.link_id, clicked_at = u.clicked_at,
            agreement_id = u.agreement_id, agreement_version = u.version, sale_id = u.sale_id,
            processed_at = case when u.status = 'waiting' then null else now() end
        from unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                    $7::timestamptz[], $8::bigint[], $9::int[], $10::bigint[])
             as u(id, status, reason, fraud, via, link_id, clicked_at, agreement_id, version, sale_id)
        where c.id = u.id
        "#,
        &outcomes.iter().map(|o| o.id).collect::<Vec<_>>(),
        &outcomes.iter().map(|o| o.status.to_owned()).collect::<Vec<_>>(),
        &outcomes.iter().map(|o| o.reason.clone()).collect::<Vec<_>>() as &[Option<String>],
        &outcomes.iter().map(|o| o.fraud.join(",")).collect::<Vec<_>>(),
        &outcomes.iter().map(|o| o.via.map(str::to_owned)).collect::<Vec<_>>() as &[Option<String>],
        &outcomes.iter().map(|o| o.link_id).collect::<Vec<_>>() as &[Option<i64>],
        &outcomes.iter().map(|o| o.clicked_at).collect::<Vec<_>>() as &[Option<DateTime<Utc>>],
        &outcomes.iter().map(|o| o.agreement_id).collect::<Vec<_>>() as &[Option<i64>],
        &outcomes.iter().map(|o| o.agreement_version).collect::<Vec<_>>() as &[Option<i32>],
        &outcomes.iter().map(|o| o.sale_id).collect::<Vec<_>>() as &[Option<i64>],
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Puts refunds that waited for their sale back in the queue once the sale
/// has been processed.
async fn requeue_waiting_refunds(tx: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        r#"
        update conversions r set status = 'received', reason = null
        where r.status = 'waiting' and r.event = 'refund'
          and exists (select 1 from conversions s
                      where s.program_id = r.program_id and s.order_id = r.order_id
                        and s.event = 'sale' and s.status in ('attributed', 'unattributed', 'rejected'))
        "#
    )
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected())
}
