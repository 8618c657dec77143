//! Statuses, rules and reasons in plain words, in the visitor's language.

use super::i18n::Tr;
use crate::commissions::reasons::LedgerReason;
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

/// A ledger entry's reason in the reader's language: those mitra writes in
/// words, their amounts in money; a person's words as they were written.
pub fn ledger_reason(tr: &Tr, text: &str, currency: Currency) -> String {
    match LedgerReason::parse(text) {
        LedgerReason::HeldForReview(signals) => {
            let why: Vec<String> = signals
                .iter()
                .map(|s| word(tr, "fraud", s.as_str()))
                .collect();
            tr.ta("ledger-reason-held", &[("why", why.join("; "))])
        }
        LedgerReason::HoldPeriodOver => tr.t("ledger-reason-hold-over"),
        LedgerReason::ApprovedEarly => tr.t("ledger-reason-approved-early"),
        LedgerReason::ClearedAfterReview => tr.t("ledger-reason-cleared"),
        LedgerReason::CarriedNetted => tr.t("ledger-reason-carried-netted"),
        LedgerReason::Refund {
            amount_minor,
            refunded_minor,
            sale_minor,
        } => tr.ta(
            "ledger-reason-refund",
            &[
                ("amount", tr.money(amount_minor, currency)),
                ("refunded", tr.money(refunded_minor, currency)),
                ("sale", tr.money(sale_minor, currency)),
            ],
        ),
        LedgerReason::ClaimAccepted(id) => {
            tr.ta("ledger-reason-claim", &[("claim", id.to_string())])
        }
        LedgerReason::Written(text) => text,
    }
}

/// One option of a select box: the stored word, and its label.
pub struct Choice {
    pub value: &'static str,
    pub label: String,
}

/// The options of a select box of stored words, each labelled by `word`
/// under `prefix` (`claim-reason-order_not_found`).
pub fn choices(
    tr: &Tr,
    prefix: &str,
    values: impl IntoIterator<Item = &'static str>,
) -> Vec<Choice> {
    values
        .into_iter()
        .map(|value| Choice {
            value,
            label: word(tr, prefix, value),
        })
        .collect()
}
