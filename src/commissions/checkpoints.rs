//! Balance checkpoints: every partner's bucket sums as of an instant, so a
//! balance is the latest checkpoint plus the entries after it, not a sum of
//! the partner's whole ledger (which only grows). The ledger stays the
//! truth: a checkpoint is derived from it, each from the one before plus
//! the entries between them.
//!
//! A checkpoint at `through` must cover every entry created before it, and
//! an entry's `created_at` is the start of the transaction that wrote it,
//! which may commit long after. So a checkpoint is never taken later than
//! the start of the oldest transaction still open: whatever commits after
//! it was created at or after `through`, and is summed by readers as an
//! entry after the checkpoint.

use chrono::{DateTime, NaiveTime, Utc};
use sqlx::{PgConnection, PgPool};

/// How long every checkpoint is kept; after that only each day's first (at
/// midnight UTC) remains, for statements that open on an earlier day.
pub const KEEP_ALL_FOR_DAYS: i32 = 2;

/// Takes a checkpoint at `at` (by default the last whole hour at least five
/// minutes ago), or at the start of the oldest open transaction if that is
/// earlier, and one at every midnight (UTC) since the last checkpoint (or
/// since the first entry, on a ledger without checkpoints yet), so
/// statements of any past day open on a nearby checkpoint. Nothing happens
/// when a checkpoint at or after that instant exists already, so any number
/// of workers may call it. Returns the instant of the latest checkpoint
/// taken.
pub async fn take(
    db: &PgPool,
    at: Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let mut tx = db.begin().await?;
    // The first statement of the transaction: pg_stat_activity is read as
    // it stands now, and lists this transaction too (so never empty).
    let horizon: DateTime<Utc> = sqlx::query_scalar!(
        r#"select least(coalesce($1, date_trunc('hour', now() - interval '5 minutes')),
                        (select min(xact_start) from pg_stat_activity
                         where datname = current_database()))::timestamptz as "through!""#,
        at
    )
    .fetch_one(&mut *tx)
    .await?;
    // One taker at a time; the others find the work done.
    sqlx::query!("select pg_advisory_xact_lock(hashtext('mitra.ledger_checkpoints'))")
        .execute(&mut *tx)
        .await?;
    let last = sqlx::query_scalar!("select max(through) from ledger_checkpoint_runs")
        .fetch_one(&mut *tx)
        .await?;
    if last.is_some_and(|last| last >= horizon) {
        tx.commit().await?;
        return Ok(None);
    }
    let since = match last {
        Some(last) => Some(last),
        None => {
            sqlx::query_scalar!("select min(created_at) from ledger_entries")
                .fetch_one(&mut *tx)
                .await?
        }
    };
    for through in instants(since, horizon) {
        take_one(&mut tx, through).await?;
    }
    sqlx::query!(
        r#"delete from ledger_checkpoint_runs
           where through < $1::timestamptz - make_interval(days => $2::int)
             and through <> date_trunc('day', through, 'UTC')"#,
        horizon,
        KEEP_ALL_FOR_DAYS
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(horizon))
}

/// Every midnight after `since` and before `horizon`, then `horizon`.
fn instants(since: Option<DateTime<Utc>>, horizon: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    if let Some(since) = since {
        let mut day = since.date_naive();
        while let Some(next) = day.succ_opt() {
            let midnight = next.and_time(NaiveTime::MIN).and_utc();
            if midnight >= horizon {
                break;
            }
            out.push(midnight);
            day = next;
        }
    }
    out.push(horizon);
    out
}

/// A checkpoint at `through`: the previous one plus the entries between.
async fn take_one(tx: &mut PgConnection, through: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into ledger_checkpoint_runs (through) values ($1)",
        through
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        r#"
        with previous as (
            select max(through) as through from ledger_checkpoint_runs where through < $1
        )
        insert into ledger_checkpoints
            (through, partner_id, currency, pending_minor, approved_minor, paid_minor)
        select $1, partner_id, currency, sum(pending)::bigint, sum(approved)::bigint, sum(paid)::bigint
        from (
            select partner_id, currency, pending_minor as pending, approved_minor as approved,
                   paid_minor as paid
            from ledger_checkpoints
            where through = (select through from previous)
            union all
            select partner_id, currency,
                   coalesce(sum(amount_minor) filter (where bucket = 'pending'), 0),
                   coalesce(sum(amount_minor) filter (where bucket = 'approved'), 0),
                   coalesce(sum(amount_minor) filter (where bucket = 'paid'), 0)
            from ledger_entries
            where created_at >= coalesce((select through from previous), '-infinity')
              and created_at < $1
            group by partner_id, currency
        ) s
        group by partner_id, currency
        "#,
        through
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn every_midnight_between_then_the_horizon() {
        let t = |d, h| Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap();
        assert_eq!(instants(None, t(30, 10)), vec![t(30, 10)]);
        assert_eq!(instants(Some(t(30, 9)), t(30, 10)), vec![t(30, 10)]);
        assert_eq!(
            instants(Some(t(27, 9)), t(30, 10)),
            vec![t(28, 0), t(29, 0), t(30, 0), t(30, 10)]
        );
        assert_eq!(
            instants(Some(t(29, 23)), t(30, 0)),
            vec![t(30, 0)],
            "the horizon at midnight is taken once"
        );
    }
}
