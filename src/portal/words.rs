//! Statuses, rules and reasons in plain words, in the visitor's language.

use super::i18n::Tr;
use crate::domain::{AppliedRule, Currency, Rule};

/// A commission's rule: "10% of €125.00 (sale)" or "€2.00 per lead".
pub fn rule(tr: &Tr, applied: &AppliedRule, base_minor: i64, currency: Currency) -> String {
    let event = tr.t(&format!("event-{}", applied.event));
    match applied.rule {
        Rule::PercentBps(bps) => tr.ta(
            "rule-percent",
            &[
                ("rate", tr.bps(i64::from(bps.get()))),
                ("base", tr.money(base_minor, currency)),
                ("event", event),
            ],
        ),
        Rule::FlatMinor(amount) => tr.ta(
            "rule-flat",
            &[("amount", tr.money(amount, currency)), ("event", event)],
        ),
    }
}

/// A word of a status or kind (`commission-status-pending`), or the word itself.
pub fn word(tr: &Tr, prefix: &str, value: &str) -> String {
    tr.try_t(&format!("{prefix}-{value}"))
        .unwrap_or_else(|| value.to_owned())
}
