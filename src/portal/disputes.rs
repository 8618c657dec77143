//! Disputing a commission in the portal. A partner who finds a commission's
//! amount wrong (`incorrect`), or who disputes one rejected or reversed
//! (`declined`), opens a claim about it from the commissions page: the kind
//! follows from the commission's status, and the claim is opened by the
//! same core function, with the same checks, as `POST
//! /v1/programs/{id}/claims`. The program answers in the claim's thread.

use super::claim_thread::thread_path;
use super::i18n::Tr;
use super::layout::Layout;
use super::simulator::parse_amount;
use super::web::{Form, PortalError, Visitor, field, render, see_other};
use super::words::word;
use crate::claims::{self, ClaimError, NewClaim};
use crate::commissions::queries::{self, Commission};
use crate::domain::{ClaimKind, ClaimStatus, CommissionId, CommissionStatus, PartnerId};
use crate::http::state::AppState;
use crate::programs;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use sqlx::PgPool;
use std::collections::HashMap;

/// The claim a dispute of this commission opens.
pub fn kind_for(status: CommissionStatus) -> ClaimKind {
    match status {
        CommissionStatus::Reversed => ClaimKind::Declined,
        _ => ClaimKind::Incorrect,
    }
}

/// The partner's open claims about commissions, by commission (of the
/// newest `limit` open claims).
pub async fn open_disputes(
    db: &PgPool,
    partner: PartnerId,
    limit: i64,
) -> Result<HashMap<CommissionId, String>, sqlx::Error> {
    let open = claims::newest(db, None, Some(partner), Some(ClaimStatus::Open), limit).await?;
    Ok(open
        .into_iter()
        .filter_map(|c| Some((c.commission_id?, thread_path("partner", &c.id.to_string()))))
        .collect())
}

#[derive(Template)]
#[template(path = "portal/partner_dispute.html")]
struct DisputePage {
    l: Layout,
    id: String,
    program: String,
    order: String,
    amount: String,
    status: String,
    status_code: &'static str,
    date: String,
    hint: String,
    /// A rejection or reversal is disputed as a whole: the amount is optional.
    expected_required: bool,
    errors: Vec<String>,
    expected: String,
    note: String,
}

#[derive(Deserialize)]
pub struct DisputeForm {
    #[serde(default)]
    csrf: String,
    expected: Option<String>,
    note: Option<String>,
}

/// The commission disputed, if it is the partner's.
async fn disputed(
    state: &AppState,
    partner: PartnerId,
    raw: &str,
) -> Result<Commission, PortalError> {
    let id: CommissionId = raw.parse().map_err(|_| PortalError::NotFound)?;
    queries::commission_of(&state.db, partner, id)
        .await?
        .ok_or(PortalError::NotFound)
}

/// GET /portal/partner/commissions/{id}/claim: the form, or the claim
/// already open about this commission.
pub async fn page(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<String>,
) -> Result<HttpResponse, PortalError> {
    let partner = visitor.partner()?;
    let c = disputed(&state, partner, &path).await?;
    if let Some(open) = open_disputes(&state.db, partner, 500).await?.get(&c.id) {
        return Ok(see_other(open));
    }
    dispute_page(&state, &visitor, &c, None, Vec::new(), StatusCode::OK).await
}

async fn dispute_page(
    state: &AppState,
    visitor: &Visitor,
    c: &Commission,
    form: Option<&DisputeForm>,
    errors: Vec<String>,
    status: StatusCode,
) -> Result<HttpResponse, PortalError> {
    let tr: Tr = visitor.tr();
    let program = programs::get(&state.db, c.program_id)
        .await?
        .map(|p| p.name)
        .unwrap_or_default();
    let kind = kind_for(c.status);
    let value = |f: fn(&DisputeForm) -> &Option<String>| {
        form.and_then(|x| f(x).clone()).unwrap_or_default()
    };
    let page = DisputePage {
        l: Layout::new(visitor, "dispute-title"),
        id: c.id.to_string(),
        program,
        order: c.order_id.clone(),
        amount: tr.money(c.amount_minor, c.currency),
        status: word(&tr, "commission-status", c.status.as_str()),
        status_code: c.status.as_str(),
        date: tr.date(c.created_at),
        hint: tr.t(&format!("dispute-hint-{}", kind.as_str())),
        expected_required: kind == ClaimKind::Incorrect,
        errors,
        expected: value(|f| &f.expected),
        note: value(|f| &f.note),
    };
    Ok(visitor.html(status, render(&page)?))
}

/// POST /portal/partner/commissions/{id}/claim: opens the claim, and goes
/// to its thread.
pub async fn open(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<String>,
    Form(form): Form<DisputeForm>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    let partner = visitor.partner()?;
    let tr = visitor.tr();
    let c = disputed(&state, partner, &path).await?;
    let kind = kind_for(c.status);
    let mut errors = Vec::new();
    // Within the bounds the API holds `expected_commission_minor` to.
    let expected = match field(&form.expected) {
        None if kind == ClaimKind::Incorrect => {
            errors.push(format!(
                "{}: {}",
                tr.t("claim-expected"),
                tr.t("claim-needs-amount")
            ));
            None
        }
        None => None,
        Some(e) => match parse_amount(&tr, e, c.currency.exponent())
            .filter(|v| claims::check_expected(*v).is_ok())
        {
            Some(v) => Some(v),
            None => {
                errors.push(format!(
                    "{}: {}",
                    tr.t("claim-expected"),
                    tr.t("claim-needs-amount")
                ));
                None
            }
        },
    };
    if !errors.is_empty() {
        return dispute_page(
            &state,
            &visitor,
            &c,
            Some(&form),
            errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let new = NewClaim {
        program: c.program_id,
        partner,
        kind,
        order_id: None,
        occurred_at: None,
        amount_minor: None,
        agreement_id: None,
        commission_id: Some(c.id),
        expected_commission_minor: expected,
        note: field(&form.note).map(|n| n.chars().take(2000).collect()),
    };
    match claims::open(&state.db, &[new], &partner.to_string()).await {
        Ok(ids) => {
            let id = ids.first().map(ToString::to_string).unwrap_or_default();
            Ok(see_other(&format!(
                "{}?notice=claim-opened",
                thread_path("partner", &id)
            )))
        }
        Err((_, ClaimError::NotFound(_))) => Err(PortalError::NotFound),
        Err((_, ClaimError::Db(e))) => Err(e.into()),
        Err((_, e)) => {
            let (c, error, status) = match e {
                e @ ClaimError::TooLate { .. } => (
                    c,
                    super::claims::refusal(&tr, e),
                    StatusCode::UNPROCESSABLE_ENTITY,
                ),
                // Another tab opened one first, or the commission changed
                // meanwhile.
                _ => {
                    if let Some(open) = open_disputes(&state.db, partner, 500).await?.get(&c.id) {
                        return Ok(see_other(open));
                    }
                    let c = disputed(&state, partner, &path).await?;
                    (c, tr.t("dispute-changed"), StatusCode::CONFLICT)
                }
            };
            dispute_page(&state, &visitor, &c, Some(&form), vec![error], status).await
        }
    }
}
