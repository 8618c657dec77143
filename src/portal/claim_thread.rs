//! A claim's thread in the portal, on both sides: what was claimed, where it
//! stands, every step with who and when, and a box to comment. A partner
//! reads its own claims (`/portal/partner/claims/{id}`), a program its
//! program's (`/portal/merchant/claims/{id}`); anyone else finds no such
//! page. A comment goes through the same core function as `POST
//! /v1/claims/{id}/comments`, and the other side is told by webhook
//! (`claim.commented`).

use super::claims::{ClaimRow, row};
use super::i18n::Tr;
use super::layout::Layout;
use super::web::{Form, PortalError, Visitor, field, render, see_other};
use super::words::word;
use crate::accounts::Tenant;
use crate::claims::{self, Claim, ClaimError};
use crate::commissions::queries;
use crate::domain::{ClaimId, ClaimStatus};
use crate::http::state::AppState;
use crate::{partners, programs};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

/// The thread's address on one side (`partner` or `merchant`).
pub fn thread_path(side: &str, id: &str) -> String {
    format!("/portal/{side}/claims/{id}")
}

/// One step of the thread, as the page shows it.
pub struct StepRow {
    pub who: String,
    /// Whether the reader wrote it.
    pub mine: bool,
    pub action: String,
    pub action_code: &'static str,
    pub when: String,
    pub reason: Option<String>,
    pub note: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/claim_thread.html")]
struct ThreadPage {
    l: Layout,
    /// `partner` or `merchant`: where its forms and links go.
    side: &'static str,
    claim: ClaimRow,
    /// The other side's role, as the summary names it (`program`, `partner`).
    other_role: &'static str,
    /// A commission claim: the commission as it stands (amount, status).
    commission: Option<String>,
    /// "Commission you expect" or "… the partner expects".
    expected_label: String,
    expected: String,
    occurred: String,
    /// The program may still decide it (in its queue).
    decide_in_queue: bool,
    steps: Vec<StepRow>,
    errors: Vec<String>,
    comment: String,
}

#[derive(Deserialize)]
pub struct CommentForm {
    #[serde(default)]
    csrf: String,
    note: Option<String>,
}

/// A claim as one of its parties reads it.
struct Shown {
    claim: Claim,
    /// `partner` or `merchant`: the side in the page's addresses.
    side: &'static str,
    /// What the reader signs its steps with (its partner's or program's id).
    me: String,
}

/// The claim at `/portal/{side}/claims/{id}`, if the visitor is its party
/// on that side (`partner` or `merchant`); anything else is no such page.
async fn visible(
    state: &AppState,
    visitor: &Visitor,
    (side, id): &(String, String),
) -> Result<Shown, PortalError> {
    let tenant = visitor.require()?.user.tenant;
    let id: ClaimId = id.parse().map_err(|_| PortalError::NotFound)?;
    let claim = claims::get(&state.db, id)
        .await?
        .ok_or(PortalError::NotFound)?;
    let (side, me) = match (side.as_str(), tenant) {
        ("partner", Tenant::Partner(p)) if p == claim.partner_id => ("partner", p.to_string()),
        ("merchant", Tenant::Program(p)) if p == claim.program_id => ("merchant", p.to_string()),
        _ => return Err(PortalError::NotFound),
    };
    Ok(Shown { claim, side, me })
}

/// GET /portal/{partner|merchant}/claims/{id}
pub async fn page(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PortalError> {
    let shown = visible(&state, &visitor, &path).await?;
    thread_page(&state, &visitor, &shown, None, Vec::new(), StatusCode::OK).await
}

/// The thread page; after a refused comment, with what was typed and why.
async fn thread_page(
    state: &AppState,
    visitor: &Visitor,
    shown: &Shown,
    comment: Option<&str>,
    errors: Vec<String>,
    status: StatusCode,
) -> Result<HttpResponse, PortalError> {
    let Shown { claim, side, me } = shown;
    let (side, me) = (*side, me.as_str());
    let tr = visitor.tr();
    // The other side's name, and its id as its steps are signed.
    let (other, other_actor, other_role) = if side == "partner" {
        let name = programs::get(&state.db, claim.program_id)
            .await?
            .map(|p| p.name)
            .unwrap_or_default();
        (name, claim.program_id.to_string(), "program")
    } else {
        let name = partners::get(&state.db, claim.partner_id)
            .await?
            .map(|p| p.name)
            .unwrap_or_default();
        (name, claim.partner_id.to_string(), "partner")
    };
    let steps = claim
        .events
        .iter()
        .map(|e| StepRow {
            who: who(&tr, &e.actor, me, &other_actor, &other),
            mine: e.actor == me,
            action: word(&tr, "claim-action", e.action.as_str()),
            action_code: e.action.as_str(),
            when: tr.datetime(e.created_at),
            reason: e.reason_code.map(|r| word(&tr, "claim-reason", r.as_str())),
            note: e.note.clone(),
        })
        .collect();
    // A commission claim: the commission as it stands, named by its order
    // as the lists name it.
    let disputed = match claim.commission_id {
        Some(id) => queries::commission_of(&state.db, claim.partner_id, id).await?,
        None => None,
    };
    let orders = disputed
        .iter()
        .map(|c| (c.id, c.order_id.clone()))
        .collect();
    let commission = disputed.as_ref().map(|c| {
        format!(
            "{} ({})",
            tr.money(c.amount_minor, c.currency),
            word(&tr, "commission-status", c.status.as_str())
        )
    });
    let expected_label = tr.t(if side == "partner" {
        "claim-expected"
    } else {
        "claim-expected-by-partner"
    });
    let page = ThreadPage {
        l: Layout::new(visitor, "claim-thread-title"),
        side,
        commission,
        expected_label,
        other_role,
        expected: claim
            .expected_commission_minor
            .map(|a| tr.money(a, claim.currency))
            .unwrap_or_default(),
        occurred: claim.occurred_at.map(|t| tr.date(t)).unwrap_or_default(),
        decide_in_queue: side == "merchant" && claim.status == ClaimStatus::Open,
        claim: row(&tr, claim, other, &orders),
        steps,
        errors,
        comment: comment.unwrap_or_default().to_owned(),
    };
    Ok(visitor.html(status, render(&page)?))
}

/// Who took a step, in words: the reader, the other side by name, the
/// network's admin, or the program's deadline.
fn who(tr: &Tr, actor: &str, me: &str, other_actor: &str, other: &str) -> String {
    match actor {
        a if a == me => tr.t("claim-actor-you"),
        a if a == other_actor => other.to_owned(),
        "admin" => tr.t("claim-actor-admin"),
        "deadline" => tr.t("claim-actor-deadline"),
        a => a.to_owned(),
    }
}

/// POST /portal/{partner|merchant}/claims/{id}/comment
pub async fn comment(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<(String, String)>,
    Form(form): Form<CommentForm>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    let shown = visible(&state, &visitor, &path).await?;
    let Some(note) = field(&form.note).map(|n| n.chars().take(2000).collect::<String>()) else {
        let errors = vec![visitor.tr().t("claim-comment-needs-text")];
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return thread_page(&state, &visitor, &shown, None, errors, status).await;
    };
    let claim = &shown.claim;
    match claims::comment(&state.db, claim.id, &shown.me, &note).await {
        Ok(()) => Ok(see_other(&format!(
            "{}?notice=claim-commented#step-{}",
            thread_path(shown.side, &claim.id.to_string()),
            claim.events.len()
        ))),
        Err(ClaimError::Db(e)) => Err(e.into()),
        Err(ClaimError::NotFound(_)) => Err(PortalError::NotFound),
        Err(
            e @ (ClaimError::Invalid(..) | ClaimError::Conflict(_) | ClaimError::TooLate { .. }),
        ) => {
            let status = StatusCode::CONFLICT;
            let m = e.to_string();
            thread_page(&state, &visitor, &shown, Some(&note), vec![m], status).await
        }
    }
}
