//! Claims in the portal, the partner's side: the claims it opened, where
//! each stands and what the program answered, and a form to claim a sale
//! that was never booked (`untracked`). The claim is opened by the same
//! core function as `POST /v1/programs/{id}/claims`, with the same checks
//! of the order id, date and amount; the program answers it through the
//! API.

use super::layout::Layout;
use super::simulator::parse_amount;
use super::web::{Form, PortalError, Visitor, field, see_other};
use super::words::word;
use crate::agreements;
use crate::claims::{self, ClaimError, NewClaim};
use crate::conversions::{check_amount, check_occurred_at, check_reference};
use crate::domain::{AgreementId, ClaimKind, EnrollmentStatus, Event, ProgramId};
use crate::enrollments::{self, Side};
use crate::http::state::AppState;
use crate::programs;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{NaiveDate, TimeZone, Utc};
use serde::Deserialize;
use std::collections::HashMap;

/// Most claims the page lists (the newest).
const MAX_LISTED: i64 = 500;

pub struct ClaimRow {
    pub id: String,
    pub program: String,
    pub kind: String,
    pub subject: String,
    pub amount: String,
    pub status: String,
    pub status_code: &'static str,
    pub opened: String,
    pub deadline: String,
    pub answer: String,
}

pub struct AgreementChoice {
    pub id: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "portal/partner_claims.html")]
struct ClaimsPage {
    l: Layout,
    rows: Vec<ClaimRow>,
    agreements: Vec<AgreementChoice>,
    errors: Vec<String>,
    order_id: String,
    date: String,
    amount: String,
    expected: String,
    note: String,
}

#[derive(Deserialize)]
pub struct ClaimForm {
    #[serde(default)]
    csrf: String,
    agreement_id: String,
    order_id: Option<String>,
    date: Option<String>,
    amount: Option<String>,
    expected: Option<String>,
    note: Option<String>,
}

/// GET /portal/partner/claims
pub async fn page(
    state: web::Data<AppState>,
    visitor: Visitor,
) -> Result<HttpResponse, PortalError> {
    claims_page(&state, &visitor, None, Vec::new(), StatusCode::OK).await
}

async fn claims_page(
    state: &AppState,
    visitor: &Visitor,
    form: Option<&ClaimForm>,
    errors: Vec<String>,
    status: StatusCode,
) -> Result<HttpResponse, PortalError> {
    let partner = visitor.partner()?;
    let tr = visitor.tr();
    let ms = enrollments::list(&state.db, Side::Partner(partner), None, 0, 500).await?;
    let names: HashMap<ProgramId, String> = ms
        .iter()
        .map(|e| (e.program_id, e.program_name.clone()))
        .collect();
    let mut listed = claims::list(&state.db, None, Some(partner), None, 0, i64::MAX).await?;
    listed.reverse();
    listed.truncate(MAX_LISTED as usize);
    let rows = listed
        .into_iter()
        .map(|c| {
            let mut answer = c
                .reason_code
                .map(|r| word(&tr, "claim-reason", r.as_str()))
                .unwrap_or_default();
            if let Some(note) = &c.decision_note {
                if !answer.is_empty() {
                    answer.push_str(": ");
                }
                answer.push_str(note);
            }
            ClaimRow {
                id: c.id.to_string(),
                program: names.get(&c.program_id).cloned().unwrap_or_default(),
                kind: word(&tr, "claim-kind", c.kind.as_str()),
                subject: c
                    .order_id
                    .clone()
                    .or_else(|| c.commission_id.map(|id| id.to_string()))
                    .unwrap_or_default(),
                amount: c
                    .amount_minor
                    .or(c.expected_commission_minor)
                    .map(|a| tr.money(a, c.currency))
                    .unwrap_or_default(),
                status: word(&tr, "claim-status", c.status.as_str()),
                status_code: c.status.as_str(),
                opened: tr.date(c.created_at),
                deadline: tr.date(c.deadline_at),
                answer,
            }
        })
        .collect();
    let active: Vec<ProgramId> = ms
        .iter()
        .filter(|e| e.status == EnrollmentStatus::Active)
        .map(|e| e.program_id)
        .collect();
    let chosen = form.map(|f| f.agreement_id.as_str());
    let agreements = agreements::list(&state.db, None, Some(partner), 0, 200)
        .await?
        .into_iter()
        .filter(|a| active.contains(&a.program_id))
        .map(|a| AgreementChoice {
            label: format!(
                "{} · {}",
                names.get(&a.program_id).cloned().unwrap_or_default(),
                tr.ta("agreement-version", &[("version", a.version.to_string())])
            ),
            selected: chosen == Some(a.id.to_string().as_str()),
            id: a.id.to_string(),
        })
        .collect();
    let value =
        |f: fn(&ClaimForm) -> &Option<String>| form.and_then(|x| f(x).clone()).unwrap_or_default();
    let page = ClaimsPage {
        l: Layout::new(visitor, "claims-title"),
        rows,
        agreements,
        errors,
        order_id: value(|f| &f.order_id),
        date: value(|f| &f.date),
        amount: value(|f| &f.amount),
        expected: value(|f| &f.expected),
        note: value(|f| &f.note),
    };
    Ok(visitor.html(
        status,
        page.render()
            .map_err(|e| PortalError::Internal(anyhow::anyhow!("template failed: {e}")))?,
    ))
}

/// POST /portal/partner/claims: claims a sale the shop never reported
/// (untracked), under one of the partner's agreements in an active program.
pub async fn open(
    state: web::Data<AppState>,
    visitor: Visitor,
    Form(form): Form<ClaimForm>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    let partner = visitor.partner()?;
    let tr = visitor.tr();
    let agreement_id: AgreementId = form
        .agreement_id
        .parse()
        .map_err(|_| PortalError::NotFound)?;
    // The agreement must be the partner's, in a program it is active in.
    let agreement = agreements::get(&state.db, agreement_id, None)
        .await?
        .filter(|a| a.partners.iter().any(|p| p.partner_id == partner))
        .ok_or(PortalError::NotFound)?;
    if !enrollments::is_active(&state.db, agreement.program_id, partner).await? {
        return Err(PortalError::NotFound);
    }
    let program = programs::get(&state.db, agreement.program_id)
        .await?
        .ok_or(PortalError::NotFound)?;
    let exponent = program.currency.exponent();
    let now = Utc::now();
    let mut errors = Vec::new();
    let mut bad = |key: &str, message: String| {
        errors.push(format!("{}: {message}", tr.t(key)));
    };
    let order_id = field(&form.order_id).map(str::to_owned);
    match &order_id {
        None => bad("claim-order", tr.t("claim-needs-order")),
        Some(o) => {
            if let Err(e) = check_reference(o) {
                bad("claim-order", e)
            }
        }
    }
    let occurred_at = field(&form.date)
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .and_then(|d| {
            // Noon of that day where the partner is: the day it names.
            visitor
                .tz
                .from_local_datetime(&d.and_hms_opt(12, 0, 0)?)
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc));
    match occurred_at {
        None => bad("claim-date", tr.t("claim-needs-date")),
        Some(t) => {
            if check_occurred_at(t, now).is_err() {
                bad("claim-date", tr.t("claim-date-range"))
            }
        }
    }
    let amount_minor = field(&form.amount).and_then(|a| parse_amount(&tr, a, exponent));
    match amount_minor {
        None => bad("claim-amount", tr.t("claim-needs-amount")),
        Some(a) => {
            if check_amount(Some(Event::Sale), a).is_err() {
                bad("claim-amount", tr.t("claim-needs-amount"))
            }
        }
    }
    let expected = match field(&form.expected) {
        None => None,
        Some(e) => match parse_amount(&tr, e, exponent) {
            Some(v) => Some(v),
            None => {
                bad("claim-expected", tr.t("claim-needs-amount"));
                None
            }
        },
    };
    let note = field(&form.note).map(|n| n.chars().take(2000).collect::<String>());
    if !errors.is_empty() {
        return claims_page(
            &state,
            &visitor,
            Some(&form),
            errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let new = NewClaim {
        program: agreement.program_id,
        partner,
        kind: ClaimKind::Untracked,
        order_id,
        occurred_at,
        amount_minor,
        agreement_id: Some(agreement_id),
        commission_id: None,
        expected_commission_minor: expected,
        note,
    };
    match claims::open(&state.db, &[new], &partner.to_string()).await {
        Ok(_) => Ok(see_other("/portal/partner/claims?notice=claim-opened")),
        Err((_, ClaimError::NotFound(_))) => Err(PortalError::NotFound),
        Err((_, ClaimError::Invalid(_, message) | ClaimError::Conflict(message))) => {
            claims_page(
                &state,
                &visitor,
                Some(&form),
                vec![message],
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err((_, ClaimError::Db(e))) => Err(e.into()),
    }
}
