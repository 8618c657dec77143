//! Commissions: what partners earn. Booking (the one path every commission
//! is created by), the append-only ledger behind every balance, a person's
//! decisions (approve, reject), the lifecycle worker that approves after
//! the hold, payouts, the queries partners read, and the balance
//! checkpoints that keep those queries short.

pub mod booking;
pub mod checkpoints;
pub mod decisions;
pub mod ledger;
pub mod lifecycle;
pub mod payouts;
pub mod queries;
pub mod refunds;
