//! The outbox and outgoing webhooks.
//!
//! Events are queued by triggers (the migrations `outbox_webhooks` and
//! `queues_per_statement`) in the same transaction as the change each
//! reports, so none is lost or invented: one queue row per statement, which
//! the delivery worker (`delivery`) expands into events (`outbox_expand`),
//! then fans each event out to the endpoints subscribed to it and sends each delivery the Standard Webhooks
//! way, retrying with exponential backoff for 3 days; every attempt is kept
//! until `retention` purges the event's history (30 days by default).
//! `endpoints` holds what programs and partners register; `guard` the
//! resolver that keeps deliveries off internal addresses.

pub mod client;
pub mod delivery;
pub mod endpoints;
pub mod guard;
pub mod retention;

use crate::domain::{
    AgreementId, ClaimId, CommissionId, ConversionId, EnrollmentId, EventId, LedgerEntryId, LinkId,
    PartnerId, PayoutId, ProgramId, WebhookEvent,
};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// An event's payload as stored (row ids) made into what the API shows
/// (public ids): every `<kind>_id` holding a number becomes that kind's id.
pub fn render(data: &Value) -> Value {
    let Value::Object(fields) = data else {
        return data.clone();
    };
    let public = |key: &str, n: i64| -> Option<String> {
        Some(match key {
            "program_id" => ProgramId::from_db(n).to_string(),
            "partner_id" => PartnerId::from_db(n).to_string(),
            "conversion_id" => ConversionId::from_db(n).to_string(),
            "commission_id" => CommissionId::from_db(n).to_string(),
            "agreement_id" => AgreementId::from_db(n).to_string(),
            "link_id" => LinkId::from_db(n).to_string(),
            "payout_id" => PayoutId::from_db(n).to_string(),
            "enrollment_id" => EnrollmentId::from_db(n).to_string(),
            "entry_id" => LedgerEntryId::from_db(n).to_string(),
            "claim_id" => ClaimId::from_db(n).to_string(),
            _ => return None,
        })
    };
    let out: Map<String, Value> = fields
        .iter()
        .map(|(k, v)| {
            let shown = v
                .as_i64()
                .and_then(|n| public(k, n))
                .map(Value::String)
                .unwrap_or_else(|| v.clone());
            (k.clone(), shown)
        })
        .collect();
    Value::Object(out)
}

/// The body of a delivery: Standard Webhooks' `type`, `timestamp` and
/// `data`, and the event's id (also sent as `webhook-id`).
pub fn body(id: EventId, kind: WebhookEvent, at: DateTime<Utc>, data: &Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": id,
        "type": kind,
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "data": render(data),
    }))
    .expect("an event serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn row_ids_become_public_ids_and_other_fields_stay() {
        let stored = json!({
            "program_id": 1, "partner_id": 62, "commission_id": 5, "order_id": "A-1",
            "amount_minor": 1000, "agreement_version": 2, "reason": null
        });
        assert_eq!(
            render(&stored),
            json!({
                "program_id": "prg_1", "partner_id": "ptn_10", "commission_id": "com_5",
                "order_id": "A-1", "amount_minor": 1000, "agreement_version": 2, "reason": null
            })
        );
    }

    #[test]
    fn the_body_has_the_standard_webhooks_shape() {
        let at = DateTime::parse_from_rfc3339("2026-12-01T10:00:00.5Z")
            .unwrap()
            .with_timezone(&Utc);
        let body = body(
            EventId::from_db(3),
            WebhookEvent::PayoutPaid,
            at,
            &json!({"payout_id": 1}),
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap(),
            json!({"data": {"payout_id": "pay_1"}, "id": "evt_3",
                   "timestamp": "2026-12-01T10:00:00.500000Z", "type": "payout.paid"})
        );
    }
}
