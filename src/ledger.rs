//! Commissions and the append-only ledger behind every balance.
//!
//! A commission's amount sits in one bucket: pending, approved or paid.
//! Booking appends +amount to pending; approval moves it (-pending,
//! +approved); payment moves it again (-approved, +paid); a refund takes
//! its part out of the bucket it sits in. A refund of a paid commission
//! cannot take money back from the bank: it appends a negative `carried`
//! entry to approved, which the partner's next payout nets. So a balance is
//! always the sum of entries, and history is never rewritten (the table
//! refuses updates and deletes).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// A commission to book, computed by attribution.
#[derive(Debug, Clone)]
pub struct NewCommission {
    pub conversion_id: i64,
    pub program_id: i64,
    pub partner_id: i64,
    pub agreement_id: i64,
    pub agreement_version: i32,
    pub rule: serde_json::Value,
    pub base_minor: i64,
    pub total_minor: i64,
    pub share_bps: i32,
    pub amount_minor: i64,
    pub currency: String,
    pub review: bool,
    pub fraud_reasons: Vec<&'static str>,
    pub approve_after: DateTime<Utc>,
}

/// One ledger entry to append.
#[derive(Debug, Clone)]
pub struct Entry {
    pub commission_id: Option<i64>,
    pub program_id: i64,
    pub partner_id: i64,
    pub currency: String,
    pub bucket: &'static str,
    pub amount_minor: i64,
    pub kind: &'static str,
    pub conversion_id: Option<i64>,
    pub payout_id: Option<i64>,
    pub actor: String,
    pub reason: Option<String>,
}

/// Appends entries in one statement.
pub async fn append(tx: &mut PgConnection, entries: &[Entry]) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&Entry) -> Option<i64>| entries.iter().map(f).collect::<Vec<_>>();
    let text = |f: fn(&Entry) -> String| entries.iter().map(f).collect::<Vec<_>>();
    sqlx::query!(
        r#"
        insert into ledger_entries
            (commission_id, program_id, partner_id, currency, bucket, amount_minor, kind,
             conversion_id, payout_id, actor, reason)
        select * from unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[],
                             $6::bigint[], $7::text[], $8::bigint[], $9::bigint[], $10::text[], $11::text[])
        "#,
        &col(|e| e.commission_id) as &[Option<i64>],
        &entries.iter().map(|e| e.program_id).collect::<Vec<_>>(),
        &entries.iter().map(|e| e.partner_id).collect::<Vec<_>>(),
        &text(|e| e.currency.clone()),
        &text(|e| e.bucket.to_owned()),
        &entries.iter().map(|e| e.amount_minor).collect::<Vec<_>>(),
        &text(|e| e.kind.to_owned()),
        &col(|e| e.conversion_id) as &[Option<i64>],
        &col(|e| e.payout_id) as &[Option<i64>],
        &text(|e| e.actor.clone()),
        &entries.iter().map(|e| e.reason.clone()).collect::<Vec<_>>() as &[Option<String>],
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Books commissions with their `created` entries. A commission already
/// booked for the same conversion and partner is left as it is: booking is
/// exactly-once whatever the workers do.
pub async fn book(
    tx: &mut PgConnection,
    new: &[NewCommission],
) -> Result<Vec<(i64, NewCommission)>, sqlx::Error> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let rows = sqlx::query!(
        r#"
        insert into commissions
            (conversion_id, program_id, partner_id, agreement_id, agreement_version, rule,
             base_minor, total_minor, share_bps, original_minor, amount_minor, currency, status,
             review, fraud_reasons, approve_after)
        select c, p, pa, a, v, r, b, t, s, amt, amt, cur, 'pending', rev,
               coalesce(string_to_array(nullif(fr, ''), ','), '{}'), aa
        from unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::int[], $6::jsonb[],
                    $7::bigint[], $8::bigint[], $9::int[], $10::bigint[], $11::text[], $12::bool[],
                    $13::text[], $14::timestamptz[])
             as u(c, p, pa, a, v, r, b, t, s, amt, cur, rev, fr, aa)
        on conflict (conversion_id, partner_id) do nothing
        returning id, conversion_id, partner_id
        "#,
        &new.iter().map(|n| n.conversion_id).collect::<Vec<_>>(),
        &new.iter().map(|n| n.program_id).collect::<Vec<_>>(),
        &new.iter().map(|n| n.partner_id).collect::<Vec<_>>(),
        &new.iter().map(|n| n.agreement_id).collect::<Vec<_>>(),
        &new.iter().map(|n| n.agreement_version).collect::<Vec<_>>(),
        &new.iter().map(|n| n.rule.clone()).collect::<Vec<_>>(),
        &new.iter().map(|n| n.base_minor).collect::<Vec<_>>(),
        &new.iter().map(|n| n.total_minor).collect::<Vec<_>>(),
        &new.iter().map(|n| n.share_bps).collect::<Vec<_>>(),
        &new.iter().map(|n| n.amount_minor).collect::<Vec<_>>(),
        &new.iter().map(|n| n.currency.clone()).collect::<Vec<_>>(),
        &new.iter().map(|n| n.review).collect::<Vec<_>>(),
        &new.iter()
            .map(|n| n.fraud_reasons.join(","))
            .collect::<Vec<_>>(),
        &new.iter().map(|n| n.approve_after).collect::<Vec<_>>(),
    )
    .fetch_all(&mut *tx)
    .await?;
    let booked: Vec<(i64, NewCommission)> = rows
        .into_iter()
        .filter_map(|r| {
            new.iter()
                .find(|n| n.conversion_id == r.conversion_id && n.partner_id == r.partner_id)
                .map(|n| (r.id, n.clone()))
        })
        .collect();
    let entries: Vec<Entry> = booked
        .iter()
        .map(|(id, n)| Entry {
            commission_id: Some(*id),
            program_id: n.program_id,
            partner_id: n.partner_id,
            currency: n.currency.clone(),
            bucket: "pending",
            amount_minor: n.amount_minor,
            kind: "created",
            conversion_id: Some(n.conversion_id),
            payout_id: None,
            actor: "worker".into(),
            reason: (!n.fraud_reasons.is_empty())
                .then(|| format!("held for review: {}", n.fraud_reasons.join(", "))),
        })
        .collect();
    append(tx, &entries).await?;
    Ok(booked)
}

/// A commission as it stands, locked for a change.
#[derive(Debug, Clone)]
pub struct Held {
    pub id: i64,
    pub program_id: i64,
    pub partner_id: i64,
    pub currency: String,
    pub status: String,
    pub amount_minor: i64,
    pub original_minor: i64,
}

/// Takes `reduction` out of a commission (a refund): from its bucket while
/// pending or approved; once paid, as a debt carried into the next payout.
/// Returns the entry and the commission's new amount and status.
pub fn reduce(
    c: &Held,
    reduction: i64,
    conversion_id: i64,
    reason: &str,
) -> Option<(Entry, i64, &'static str)> {
    if reduction <= 0 || c.status == "reversed" {
        return None;
    }
    let amount = c.amount_minor - reduction;
    let (bucket, kind) = match c.status.as_str() {
        "pending" => ("pending", if amount == 0 { "reversed" } else { "adjusted" }),
        "approved" => (
            "approved",
            if amount == 0 { "reversed" } else { "adjusted" },
        ),
        // Paid out already: the partner owes it back from the next payout.
        _ => ("approved", "carried"),
    };
    let status = if amount == 0 {
        "reversed"
    } else {
        match c.status.as_str() {
            "pending" => "pending",
            "approved" => "approved",
            _ => "paid",
        }
    };
    Some((
        Entry {
            commission_id: Some(c.id),
            program_id: c.program_id,
            partner_id: c.partner_id,
            currency: c.currency.clone(),
            bucket,
            amount_minor: -reduction,
            kind,
            conversion_id: Some(conversion_id),
            payout_id: None,
            actor: "worker".into(),
            reason: Some(reason.to_owned()),
        },
        amount,
        status,
    ))
}

/// The two entries that move an amount from one bucket to another.
pub fn transfer(
    c: &Held,
    from: &'static str,
    to: &'static str,
    kind: &'static str,
    actor: &str,
    reason: Option<&str>,
) -> [Entry; 2] {
    let entry = |bucket, amount| Entry {
        commission_id: Some(c.id),
        program_id: c.program_id,
        partner_id: c.partner_id,
        currency: c.currency.clone(),
        bucket,
        amount_minor: amount,
        kind,
        conversion_id: None,
        payout_id: None,
        actor: actor.to_owned(),
        reason: reason.map(str::to_owned),
    };
    [entry(from, -c.amount_minor), entry(to, c.amount_minor)]
}

/// Approves pending commissions (the lifecycle worker when their hold is
/// over, or a person early): status and entries in one go.
pub async fn approve(
    tx: &mut PgConnection,
    held: &[Held],
    actor: &str,
    reason: Option<&str>,
) -> Result<(), sqlx::Error> {
    if held.is_empty() {
        return Ok(());
    }
    let entries: Vec<Entry> = held
        .iter()
        .flat_map(|c| transfer(c, "pending", "approved", "approved", actor, reason))
        .collect();
    append(tx, &entries).await?;
    let ids: Vec<i64> = held.iter().map(|c| c.id).collect();
    sqlx::query!(
        "update commissions set status = 'approved', review = false, updated_at = now() where id = any($1)",
        &ids
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Locks commissions by id, in id order.
pub async fn lock(tx: &mut PgConnection, ids: &[i64]) -> Result<Vec<Held>, sqlx::Error> {
    sqlx::query_as!(
        Held,
        r#"select id, program_id, partner_id, currency, status, amount_minor, original_minor
           from commissions where id = any($1) order by id for update"#,
        ids
    )
    .fetch_all(&mut *tx)
    .await
}

/// Rejects a pending commission (a person's decision, with a reason): its
/// amount leaves the pending bucket, it becomes reversed, and the day's
/// report loses it.
pub async fn reject(
    tx: &mut PgConnection,
    c: &Held,
    actor: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    append(
        tx,
        &[Entry {
            commission_id: Some(c.id),
            program_id: c.program_id,
            partner_id: c.partner_id,
            currency: c.currency.clone(),
            bucket: "pending",
            amount_minor: -c.amount_minor,
            kind: "rejected",
            conversion_id: None,
            payout_id: None,
            actor: actor.to_owned(),
            reason: Some(reason.to_owned()),
        }],
    )
    .await?;
    let conv = sqlx::query!(
        r#"update commissions c set status = 'reversed', amount_minor = 0, review = false, updated_at = now()
           from conversions v where c.id = $1 and v.id = c.conversion_id
           returning v.occurred_at, v.link_id"#,
        c.id
    )
    .fetch_one(&mut *tx)
    .await?;
    let delta = |partner| crate::reports::rollup::Delta {
        program: c.program_id,
        partner,
        link: conv.link_id.unwrap_or(0),
        day: conv.occurred_at.date_naive(),
        conversions: 0,
        revenue_minor: 0,
        commission_minor: -c.amount_minor,
    };
    crate::reports::rollup::add(tx, &[delta(None), delta(Some(c.partner_id))]).await
}
