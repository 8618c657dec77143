//! Where a commission stands, and the kinds of ledger entries that move it.

use super::text_enum::text_enum;

text_enum! {
    /// A commission's status.
    pub enum CommissionStatus("commission status") {
        /// In the hold period, or held for review.
        Pending = "pending",
        /// Due in the next payout.
        Approved = "approved",
        Paid = "paid",
        /// Refunded in full, or rejected: it pays nothing.
        Reversed = "reversed",
    }
}

text_enum! {
    /// The balance bucket a ledger entry moves money in.
    pub enum Bucket("balance bucket") {
        Pending = "pending",
        Approved = "approved",
        Paid = "paid",
    }
}

impl CommissionStatus {
    /// The bucket a commission's amount sits in; a reversed one holds none.
    pub fn bucket(self) -> Option<Bucket> {
        match self {
            CommissionStatus::Pending => Some(Bucket::Pending),
            CommissionStatus::Approved => Some(Bucket::Approved),
            CommissionStatus::Paid => Some(Bucket::Paid),
            CommissionStatus::Reversed => None,
        }
    }
}

text_enum! {
    /// What a ledger entry records.
    pub enum LedgerKind("ledger entry kind") {
        /// A commission booked, into pending.
        Created = "created",
        /// Reduced by a partial refund.
        Adjusted = "adjusted",
        /// Reduced to nothing by refunds.
        Reversed = "reversed",
        /// Moved from pending to approved.
        Approved = "approved",
        /// Moved from approved to paid.
        Paid = "paid",
        /// A person decided it is not owed.
        Rejected = "rejected",
        /// A refund of a paid commission: a debt netted by the next payout.
        Carried = "carried",
        /// A carried debt settled by a payout.
        Settled = "settled",
        /// A milestone bonus booked, into pending.
        Bonus = "bonus",
        /// The month's earlier sales raised to a new tier's rate, into pending.
        TierAdjustment = "tier_adjustment",
    }
}

text_enum! {
    /// What a commission pays for.
    pub enum CommissionKind("commission kind") {
        /// A sale or lead (its share of the conversion's total).
        Conversion = "conversion",
        /// A milestone bonus, once per agreement, month and milestone.
        Bonus = "bonus",
        /// The month's earlier sales raised to a tier reached by this sale.
        TierAdjustment = "tier_adjustment",
    }
}

impl CommissionKind {
    /// The ledger entry that books a commission of this kind.
    pub fn booked_as(self) -> LedgerKind {
        match self {
            CommissionKind::Conversion => LedgerKind::Created,
            CommissionKind::Bonus => LedgerKind::Bonus,
            CommissionKind::TierAdjustment => LedgerKind::TierAdjustment,
        }
    }
}
