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

use sqlx::PgConnection;

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
