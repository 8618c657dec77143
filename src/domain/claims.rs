//! Claims: what a partner asks about, where a claim stands, and why a
//! program declines one.

use super::text_enum::text_enum;

text_enum! {
    /// What a claim is about.
    pub enum ClaimKind("claim kind") {
        /// A sale that was never booked: order id, date, amount, expected commission.
        Untracked = "untracked",
        /// A commission booked with the wrong amount.
        Incorrect = "incorrect",
        /// A rejected or reversed commission the partner disputes.
        Declined = "declined",
    }
}

text_enum! {
    /// Where a claim stands.
    pub enum ClaimStatus("claim status") {
        /// Waiting for the program (or its deadline).
        Open = "open",
        Accepted = "accepted",
        Declined = "declined",
    }
}

text_enum! {
    /// Why a program declined a claim.
    pub enum ClaimReason("claim decline reason") {
        /// No such order in the shop.
        OrderNotFound = "order_not_found",
        /// The order was cancelled or returned.
        OrderCancelled = "order_cancelled",
        /// Another partner or channel gets the credit.
        OtherSource = "other_source",
        /// Outside the attribution window or the agreement's validity.
        OutsideTerms = "outside_terms",
        /// The amount booked is right.
        AmountCorrect = "amount_correct",
        /// The claim does not show enough to check it.
        InsufficientEvidence = "insufficient_evidence",
        /// The program's deadline passed and it declines what is left open.
        DeadlinePassed = "deadline_passed",
        Other = "other",
    }
}

text_enum! {
    /// One step of a claim's thread.
    pub enum ClaimAction("claim action") {
        Opened = "opened",
        Commented = "commented",
        Accepted = "accepted",
        Declined = "declined",
    }
}

text_enum! {
    /// What happens to a claim still open when the program's deadline passes.
    pub enum OverdueAction("overdue claim action") {
        /// Accepted as claimed (as Awin does after 75 days).
        Accept = "accept",
        /// Declined with `deadline_passed`.
        Decline = "decline",
        /// Left open, and counted as overdue.
        KeepOpen = "none",
    }
}
