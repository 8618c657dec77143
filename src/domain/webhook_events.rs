//! What outgoing webhooks report, and where a delivery stands.

use super::text_enum::text_enum;

text_enum! {
    /// An outgoing webhook's event type.
    pub enum WebhookEvent("webhook event") {
        /// A shop reported a conversion; it waits for attribution.
        ConversionReceived = "conversion.received",
        /// Attributed to an agreement: its commissions are booked.
        ConversionAttributed = "conversion.attributed",
        /// No click or coupon earned it (`reason` says why).
        ConversionUnattributed = "conversion.unattributed",
        /// Refused (a forged click id, a duplicate lead).
        ConversionRejected = "conversion.rejected",
        CommissionCreated = "commission.created",
        /// Reduced by a refund (or, once paid, carried as a debt).
        CommissionAdjusted = "commission.adjusted",
        /// Refunded in full.
        CommissionReversed = "commission.reversed",
        CommissionApproved = "commission.approved",
        /// A person decided it is not owed.
        CommissionRejected = "commission.rejected",
        /// A partner was paid (one event per partner of a payout).
        PayoutPaid = "payout.paid",
        /// A membership became active.
        PartnerEnrolled = "partner.enrolled",
        /// A membership ended by deactivation or ban.
        PartnerDeactivated = "partner.deactivated",
        /// A partner opened a claim.
        ClaimOpened = "claim.opened",
        /// Either side wrote in a claim's thread.
        ClaimCommented = "claim.commented",
        /// The program (or its deadline) accepted a claim.
        ClaimAccepted = "claim.accepted",
        /// The program (or its deadline) declined a claim, with a reason code.
        ClaimDeclined = "claim.declined",
        /// One of the owner's endpoints failed too often and was disabled.
        EndpointDisabled = "webhook_endpoint.disabled",
        /// A sample sent by a test-fire.
        Test = "webhook.test",
    }
}

text_enum! {
    /// Where one event's delivery to one endpoint stands.
    pub enum DeliveryStatus("delivery status") {
        /// Waiting for its next attempt.
        Pending = "pending",
        /// An attempt was answered 2xx.
        Succeeded = "succeeded",
        /// Every attempt for 3 days failed.
        Failed = "failed",
    }
}

text_enum! {
    /// What an endpoint receives: signed JSON events, or a partner's classic
    /// postback (a GET of its URL template with macros filled in).
    pub enum EndpointKind("endpoint kind") {
        Webhook = "webhook",
        Postback = "postback",
    }
}

impl WebhookEvent {
    /// The `{status}` a postback shows for this event.
    pub fn postback_status(self) -> &'static str {
        use WebhookEvent as E;
        match self {
            E::ConversionReceived => "received",
            E::ConversionAttributed => "attributed",
            E::ConversionUnattributed => "unattributed",
            E::ConversionRejected => "rejected",
            E::CommissionCreated => "pending",
            E::CommissionAdjusted => "adjusted",
            E::CommissionReversed => "reversed",
            E::CommissionApproved => "approved",
            E::CommissionRejected => "rejected",
            E::PayoutPaid => "paid",
            E::PartnerEnrolled => "enrolled",
            E::PartnerDeactivated => "deactivated",
            E::ClaimOpened => "open",
            E::ClaimCommented => "commented",
            E::ClaimAccepted => "accepted",
            E::ClaimDeclined => "declined",
            E::EndpointDisabled => "disabled",
            E::Test => "test",
        }
    }
}
