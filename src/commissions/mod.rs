//! Commissions: what partners earn. Booking (the one path every commission
//! is created by), the append-only ledger behind every balance, a person's
//! decisions (approve, reject), the lifecycle worker that approves after
//! the hold, payouts, the queries partners read, the balance
//! checkpoints that keep those queries short, and the reasons mitra writes
//! on ledger entries.

pub mod booking;
pub mod checkpoints;
pub mod decisions;
pub mod ledger;
pub mod lifecycle;
pub mod payouts;
pub mod queries;
pub mod reasons;
pub mod refunds;
