//! What a conversion is, and what became of it.

use super::EarningEvent;
use super::text_enum::text_enum;

text_enum! {
    /// What a shop reports.
    pub enum Event("event") {
        Sale = "sale",
        Lead = "lead",
        /// Takes back part or all of an earlier sale of the same order.
        Refund = "refund",
    }
}

impl Event {
    /// The event as one that earns a commission; a refund earns none.
    pub fn earning(self) -> Option<EarningEvent> {
        match self {
            Event::Sale => Some(EarningEvent::Sale),
            Event::Lead => Some(EarningEvent::Lead),
            Event::Refund => None,
        }
    }
}

impl From<EarningEvent> for Event {
    fn from(e: EarningEvent) -> Self {
        match e {
            EarningEvent::Sale => Event::Sale,
            EarningEvent::Lead => Event::Lead,
        }
    }
}

text_enum! {
    /// Where a conversion stands: `received` until the attribution worker
    /// takes it; `waiting` for a refund whose sale has not arrived (yet);
    /// then `attributed`, `unattributed` or `rejected`.
    pub enum ConversionStatus("conversion status") {
        Received = "received",
        Waiting = "waiting",
        Attributed = "attributed",
        Unattributed = "unattributed",
        Rejected = "rejected",
    }
}

impl ConversionStatus {
    /// Whether attribution is done with it (a refund may then be applied).
    pub fn is_processed(self) -> bool {
        matches!(
            self,
            ConversionStatus::Attributed
                | ConversionStatus::Unattributed
                | ConversionStatus::Rejected
        )
    }
}

text_enum! {
    /// How a conversion was attributed.
    pub enum AttributionSource("attribution source") {
        /// The click id the shopper landed with.
        Click = "click",
        /// A coupon code of one of the program's agreements.
        Coupon = "coupon",
        /// A subscription renewal: through the first payment's attribution, without a click.
        Subscription = "subscription",
        /// A partner's claim the program accepted.
        Claim = "claim",
    }
}

text_enum! {
    /// Why a conversion was not attributed, or a note on how it was.
    pub enum ConversionReason("conversion reason") {
        UnknownProgram = "unknown_program",
        /// A coupon no agreement of the program has, and no click id.
        UnknownCoupon = "unknown_coupon",
        NoClick = "no_click",
        /// The click id is forged, altered, or of another program's link.
        InvalidClick = "invalid_click",
        ClickAfterConversion = "click_after_conversion",
        OutsideWindow = "outside_window",
        AgreementMissing = "agreement_missing",
        /// The conversion happened outside the agreement's validity.
        AgreementInactive = "agreement_inactive",
        /// A second lead from the same click.
        Duplicate = "duplicate",
        /// Attributed, but no rule pays for this event.
        NoRule = "no_rule",
        AmountOverflow = "amount_overflow",
        /// The partner's enrollment in the program is no longer active.
        PartnerInactive = "partner_inactive",
        /// A refund whose order has no sale (yet).
        SaleNotFound = "sale_not_found",
        /// A refund whose sale attribution has not processed yet.
        SaleNotProcessed = "sale_not_processed",
        /// Refunds beyond the sale's amount: capped at the sale.
        RefundExceedsSale = "refund_exceeds_sale",
        /// A refund of a sale that earned nothing.
        SaleNotAttributed = "sale_not_attributed",
        /// A subscription renewal the rule does not pay: first payment only,
        /// or past the rule's recurring months. Attributed, earning nothing.
        RenewalNotPaid = "renewal_not_paid",
        /// A subscription renewal whose first payment was not attributed.
        SubscriptionNotAttributed = "subscription_not_attributed",
        /// A refund naming a line its sale does not have: that amount was
        /// applied to the whole order.
        RefundItemUnknown = "refund_item_unknown",
    }
}

text_enum! {
    /// A reason to hold a conversion's commissions for a person's review.
    pub enum FraudSignal("fraud signal") {
        /// Converted sooner after the click than a person could.
        TooFast = "too_fast",
        /// The click was flagged as a bot's or a link preview's.
        BotClick = "bot_click",
        /// One click id converting more often than allowed.
        ClickReused = "click_reused",
        /// Far above the program's average sale.
        AmountOutlier = "amount_outlier",
    }
}
