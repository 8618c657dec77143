//! Why a ledger entry was written. mitra writes some reasons itself (a hold
//! period over, a refund, a claim accepted); a person writes others (why a
//! program rejected a commission). Both are stored as the entry's text, as
//! the API has always shown them. The ones mitra writes are made here and
//! read back here, so a page can say them in its reader's language with the
//! amounts in money, and show a person's words as written.

use crate::domain::{ClaimId, FraudSignal};
use std::fmt;

/// A ledger entry's reason, as mitra writes it or as a person wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerReason {
    /// Booked, and held for a person's review for these signals.
    HeldForReview(Vec<FraudSignal>),
    /// Approved by the lifecycle worker when the hold period ended.
    HoldPeriodOver,
    /// Approved by the program before the hold period ended, saying nothing.
    ApprovedEarly,
    /// Approved in the portal after a review, saying nothing.
    ClearedAfterReview,
    /// A payout took back debts carried from refunds of paid commissions.
    CarriedNetted,
    /// A refund of `amount_minor`; `refunded_minor` of the sale's
    /// `sale_minor` refunded so far, this one included.
    Refund {
        amount_minor: i64,
        refunded_minor: i64,
        sale_minor: i64,
    },
    /// The program accepted the partner's claim.
    ClaimAccepted(ClaimId),
    /// A person's words, shown as they are.
    Written(String),
}

const HELD: &str = "held for review: ";
const HOLD_PERIOD_OVER: &str = "hold period over";
const APPROVED_EARLY: &str = "approved early";
const CLEARED_AFTER_REVIEW: &str = "cleared after review";
const CARRIED_NETTED: &str = "carried refunds netted against this payout";

impl fmt::Display for LedgerReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeldForReview(signals) => {
                f.write_str(HELD)?;
                for (i, s) in signals.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(s.as_str())?;
                }
                Ok(())
            }
            Self::HoldPeriodOver => f.write_str(HOLD_PERIOD_OVER),
            Self::ApprovedEarly => f.write_str(APPROVED_EARLY),
            Self::ClearedAfterReview => f.write_str(CLEARED_AFTER_REVIEW),
            Self::CarriedNetted => f.write_str(CARRIED_NETTED),
            Self::Refund {
                amount_minor,
                refunded_minor,
                sale_minor,
            } => write!(
                f,
                "refund of {amount_minor} ({refunded_minor} of {sale_minor} refunded so far)"
            ),
            Self::ClaimAccepted(id) => write!(f, "claim {id} accepted"),
            Self::Written(text) => f.write_str(text),
        }
    }
}

impl LedgerReason {
    /// Reads a stored reason back: one mitra writes, or a person's words.
    pub fn parse(text: &str) -> Self {
        Self::known(text).unwrap_or_else(|| Self::Written(text.to_owned()))
    }

    fn known(text: &str) -> Option<Self> {
        match text {
            HOLD_PERIOD_OVER => return Some(Self::HoldPeriodOver),
            APPROVED_EARLY => return Some(Self::ApprovedEarly),
            CLEARED_AFTER_REVIEW => return Some(Self::ClearedAfterReview),
            CARRIED_NETTED => return Some(Self::CarriedNetted),
            _ => {}
        }
        if let Some(signals) = text.strip_prefix(HELD) {
            let signals = signals
                .split(", ")
                .map(FraudSignal::parse)
                .collect::<Result<Vec<_>, _>>()
                .ok()?;
            return Some(Self::HeldForReview(signals));
        }
        if let Some(rest) = text.strip_prefix("refund of ") {
            let (amount, rest) = rest.split_once(" (")?;
            let (refunded, rest) = rest.split_once(" of ")?;
            let sale = rest.strip_suffix(" refunded so far)")?;
            return Some(Self::Refund {
                amount_minor: amount.parse().ok()?,
                refunded_minor: refunded.parse().ok()?,
                sale_minor: sale.parse().ok()?,
            });
        }
        let id = text.strip_prefix("claim ")?.strip_suffix(" accepted")?;
        Some(Self::ClaimAccepted(id.parse().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_mitra_writes_reads_back_as_itself() {
        let reasons = [
            LedgerReason::HeldForReview(vec![FraudSignal::TooFast, FraudSignal::ClickReused]),
            LedgerReason::HoldPeriodOver,
            LedgerReason::ApprovedEarly,
            LedgerReason::ClearedAfterReview,
            LedgerReason::CarriedNetted,
            LedgerReason::Refund {
                amount_minor: 2_500,
                refunded_minor: 4_000,
                sale_minor: 10_000,
            },
            LedgerReason::ClaimAccepted(ClaimId::from_db(17)),
        ];
        for r in reasons {
            assert_eq!(LedgerReason::parse(&r.to_string()), r, "{r}");
        }
    }

    #[test]
    fn the_stored_texts_are_those_the_api_has_always_shown() {
        assert_eq!(
            LedgerReason::HeldForReview(vec![FraudSignal::TooFast, FraudSignal::BotClick])
                .to_string(),
            "held for review: too_fast, bot_click"
        );
        assert_eq!(
            LedgerReason::Refund {
                amount_minor: 2_500,
                refunded_minor: 2_500,
                sale_minor: 10_000
            }
            .to_string(),
            "refund of 2500 (2500 of 10000 refunded so far)"
        );
        assert_eq!(
            LedgerReason::ClaimAccepted(ClaimId::from_db(3)).to_string(),
            "claim clm_3 accepted"
        );
    }

    #[test]
    fn a_persons_words_stay_as_written_even_when_they_look_like_ours() {
        for text in [
            "duplicate order, see ticket 42",
            "held for review: because I said so",
            "refund of most of it",
            "claim 12 accepted by phone",
            "",
        ] {
            assert_eq!(
                LedgerReason::parse(text),
                LedgerReason::Written(text.into())
            );
        }
    }
}
