//! The append-only ledger behind every balance.
//!
//! A commission's amount sits in one bucket: pending, approved or paid.
//! Booking appends +amount to pending; approval moves it (-pending,
//! +approved); payment moves it again (-approved, +paid); a refund takes
//! its part out of the bucket it sits in. A refund of a paid commission
//! cannot take money back from the bank: it appends a negative `carried`
//! entry to approved, which the partner's next payout nets. So a balance is
//! always the sum of entries, and history is never rewritten (the table
//! refuses updates and deletes).

use crate::domain::{
    Bucket, CommissionId, CommissionStatus, ConversionId, Currency, LedgerKind, PartnerId,
    PayoutId, ProgramId,
};
use sqlx::PgConnection;

/// One ledger entry to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub commission_id: Option<CommissionId>,
    pub program_id: ProgramId,
    pub partner_id: PartnerId,
    pub currency: Currency,
    pub bucket: Bucket,
    pub amount_minor: i64,
    pub kind: LedgerKind,
    pub conversion_id: Option<ConversionId>,
    pub payout_id: Option<PayoutId>,
    pub actor: String,
    pub reason: Option<String>,
}

/// Appends entries in one statement.
pub async fn append(tx: &mut PgConnection, entries: &[Entry]) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    let ids = |f: fn(&Entry) -> Option<i64>| entries.iter().map(f).collect::<Vec<_>>();
    sqlx::query!(
        r#"
        insert into ledger_entries
            (commission_id, program_id, partner_id, currency, bucket, amount_minor, kind,
             conversion_id, payout_id, actor, reason)
        select * from unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[],
                             $6::bigint[], $7::text[], $8::bigint[], $9::bigint[], $10::text[], $11::text[])
        "#,
        &ids(|e| e.commission_id.map(CommissionId::get)) as &[Option<i64>],
        &entries.iter().map(|e| e.program_id.get()).collect::<Vec<_>>(),
        &entries.iter().map(|e| e.partner_id.get()).collect::<Vec<_>>(),
        &entries.iter().map(|e| e.currency.code()).collect::<Vec<_>>() as &[&str],
        &entries.iter().map(|e| e.bucket.as_str()).collect::<Vec<_>>() as &[&str],
        &entries.iter().map(|e| e.amount_minor).collect::<Vec<_>>(),
        &entries.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>() as &[&str],
        &ids(|e| e.conversion_id.map(ConversionId::get)) as &[Option<i64>],
        &ids(|e| e.payout_id.map(PayoutId::get)) as &[Option<i64>],
        &entries.iter().map(|e| e.actor.as_str()).collect::<Vec<_>>() as &[&str],
        &entries.iter().map(|e| e.reason.as_deref()).collect::<Vec<_>>() as &[Option<&str>],
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A commission as it stands, locked for a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub id: CommissionId,
    pub program_id: ProgramId,
    pub partner_id: PartnerId,
    pub currency: Currency,
    pub status: CommissionStatus,
    pub amount_minor: i64,
    pub original_minor: i64,
}

impl Held {
    /// An entry about this commission, by `actor`.
    pub fn entry(&self, bucket: Bucket, amount_minor: i64, kind: LedgerKind, actor: &str) -> Entry {
        Entry {
            commission_id: Some(self.id),
            program_id: self.program_id,
            partner_id: self.partner_id,
            currency: self.currency,
            bucket,
            amount_minor,
            kind,
            conversion_id: None,
            payout_id: None,
            actor: actor.to_owned(),
            reason: None,
        }
    }
}

/// Takes `reduction` out of a commission (a refund): from its bucket while
/// pending or approved; once paid, as a debt carried into the next payout.
/// Returns the entry and the commission's new amount and status.
pub fn reduce(
    c: &Held,
    reduction: i64,
    conversion_id: ConversionId,
    reason: &str,
) -> Option<(Entry, i64, CommissionStatus)> {
    if reduction <= 0 {
        return None;
    }
    let amount = c.amount_minor - reduction;
    let emptied = amount == 0;
    let (bucket, kind) = match c.status {
        CommissionStatus::Reversed => return None,
        CommissionStatus::Pending | CommissionStatus::Approved => (
            c.status.bucket()?,
            if emptied {
                LedgerKind::Reversed
            } else {
                LedgerKind::Adjusted
            },
        ),
        // Paid out already: the partner owes it back from the next payout.
        CommissionStatus::Paid => (Bucket::Approved, LedgerKind::Carried),
    };
    let status = if emptied {
        CommissionStatus::Reversed
    } else {
        c.status
    };
    let mut entry = c.entry(bucket, -reduction, kind, "worker");
    entry.conversion_id = Some(conversion_id);
    entry.reason = Some(reason.to_owned());
    Some((entry, amount, status))
}

/// The two entries that move a commission's amount from one bucket to another.
pub fn transfer(
    c: &Held,
    from: Bucket,
    to: Bucket,
    kind: LedgerKind,
    actor: &str,
    reason: Option<&str>,
) -> [Entry; 2] {
    let entry = |bucket, amount| Entry {
        reason: reason.map(str::to_owned),
        ..c.entry(bucket, amount, kind, actor)
    };
    [entry(from, -c.amount_minor), entry(to, c.amount_minor)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(status: CommissionStatus, amount: i64) -> Held {
        Held {
            id: CommissionId::from_db(1),
            program_id: ProgramId::from_db(2),
            partner_id: PartnerId::from_db(3),
            currency: Currency::parse("EUR").unwrap(),
            status,
            amount_minor: amount,
            original_minor: 500,
        }
    }

    #[test]
    fn a_refund_takes_from_the_bucket_the_amount_sits_in() {
        let refund = ConversionId::from_db(9);
        let (e, amount, status) =
            reduce(&held(CommissionStatus::Pending, 500), 200, refund, "r").unwrap();
        assert_eq!(
            (e.bucket, e.kind, e.amount_minor),
            (Bucket::Pending, LedgerKind::Adjusted, -200)
        );
        assert_eq!((amount, status), (300, CommissionStatus::Pending));
        let (e, amount, status) =
            reduce(&held(CommissionStatus::Approved, 300), 300, refund, "r").unwrap();
        assert_eq!((e.bucket, e.kind), (Bucket::Approved, LedgerKind::Reversed));
        assert_eq!((amount, status), (0, CommissionStatus::Reversed));
    }

    #[test]
    fn a_refund_of_a_paid_commission_is_carried_as_a_debt() {
        let (e, amount, status) = reduce(
            &held(CommissionStatus::Paid, 500),
            100,
            ConversionId::from_db(9),
            "r",
        )
        .unwrap();
        assert_eq!(
            (e.bucket, e.kind, e.amount_minor),
            (Bucket::Approved, LedgerKind::Carried, -100)
        );
        assert_eq!((amount, status), (400, CommissionStatus::Paid));
    }

    #[test]
    fn nothing_is_taken_from_a_reversed_commission_or_by_a_zero_refund() {
        let refund = ConversionId::from_db(9);
        assert_eq!(
            reduce(&held(CommissionStatus::Reversed, 0), 10, refund, "r"),
            None
        );
        assert_eq!(
            reduce(&held(CommissionStatus::Pending, 500), 0, refund, "r"),
            None
        );
    }

    #[test]
    fn a_transfer_moves_the_whole_amount_and_sums_to_zero() {
        let [out, into] = transfer(
            &held(CommissionStatus::Pending, 500),
            Bucket::Pending,
            Bucket::Approved,
            LedgerKind::Approved,
            "worker",
            Some("hold period over"),
        );
        assert_eq!((out.bucket, out.amount_minor), (Bucket::Pending, -500));
        assert_eq!((into.bucket, into.amount_minor), (Bucket::Approved, 500));
        assert_eq!(into.reason.as_deref(), Some("hold period over"));
    }
}
