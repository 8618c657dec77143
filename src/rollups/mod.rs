//! Daily roll-ups and the reports read from them: clicks per link and
//! partner (written by the click consumer), conversions, revenue and
//! commission (written in the transactions that change the money).

pub mod clicks;
pub mod conversions;
pub mod reports;
