//! Other names a shop's platform gives an order (`order_aliases`). A
//! refund that names the order by one is stored under the order's own id,
//! where its sale is: Stripe, from API version 2025-03-31 on, refunds a
//! subscription's payment under its PaymentIntent while the payment was
//! reported under its invoice.

use crate::domain::ProgramId;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::collections::HashMap;

/// How long an alias is kept: as long as mitra takes an event dated at
/// the payment it names (a refund of it, say). Stripe refunds and disputes
/// come within months.
pub const KEPT_DAYS: i64 = super::MAX_AGE_DAYS;

/// Most aliases one purge deletes; the next deletes more.
const PURGE_BATCH: i64 = 1_000;

/// Records that `alias` names `order_id` in the program; the first
/// recorded stays (a retried event changes nothing). A refund that came
/// first and waits under the alias moves to the order, where the next
/// requeue finds its sale.
pub async fn remember(
    db: &PgPool,
    program: ProgramId,
    alias: &str,
    order_id: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let recorded = sqlx::query!(
        "insert into order_aliases (program_id, alias, order_id) values ($1, $2, $3)
         on conflict (program_id, alias) do nothing",
        program.get(),
        alias,
        order_id
    )
    .execute(&mut *tx)
    .await?;
    if recorded.rows_affected() == 1 {
        sqlx::query!(
            "update conversions set order_id = $3
             where program_id = $1 and order_id = $2 and event = 'refund' and status = 'waiting'",
            program.get(),
            alias,
            order_id
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// The orders these names stand for, where they are aliases.
pub async fn resolve(
    db: &PgPool,
    program: ProgramId,
    names: &[String],
) -> Result<HashMap<String, String>, sqlx::Error> {
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(sqlx::query!(
        "select alias, order_id from order_aliases where program_id = $1 and alias = any($2)",
        program.get(),
        names
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|r| (r.alias, r.order_id))
    .collect())
}

/// Deletes up to a batch of the aliases recorded before `before`, oldest
/// first; returns how many went. The attribution workers call it in their
/// housekeeping with `now - KEPT_DAYS`.
pub async fn purge(db: &PgPool, before: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let purged = sqlx::query!(
        "delete from order_aliases where (program_id, alias) in (
             select program_id, alias from order_aliases where created_at < $1
             order by created_at limit $2)",
        before,
        PURGE_BATCH
    )
    .execute(db)
    .await?;
    Ok(purged.rows_affected())
}
