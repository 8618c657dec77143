//! Clicks: bot detection, the click stream's record format, its producer
//! (the click log the redirect appends to) and its consumer (the worker
//! that rolls clicks up into Postgres and flags bots for attribution).

pub mod bots;
pub mod consumer;
pub mod log;
pub mod record;

pub use record::{ClickEvent, ClickEventRef};
