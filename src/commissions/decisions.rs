//! A person's decisions on pending commissions (approve early, reject with a
//! reason), and the approval the lifecycle worker makes when a hold ends.

use super::ledger::{Entry, Held, append, transfer};
use sqlx::PgConnection;

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
    let delta = |partner| crate::rollups::conversions::Delta {
        program: c.program_id,
        partner,
        link: conv.link_id.unwrap_or(0),
        day: conv.occurred_at.date_naive(),
        conversions: 0,
        revenue_minor: 0,
        commission_minor: -c.amount_minor,
    };
    crate::rollups::conversions::add(tx, &[delta(None), delta(Some(c.partner_id))]).await
}
