//! Claims in the portal. The partner's side: the claims it opened, where
//! each stands and what the program answered, and a form to claim a sale
//! that was never booked (`untracked`), opened by the same core function
//! as `POST /v1/programs/{id}/claims` with the same checks of the order
//! id, date and amount. The program's side: its open claims, each to
//! accept or decline through the same functions as the API's, and the
//! latest decided ones.

use super::i18n::Tr;
use super::layout::Layout;
use super::merchant::partner_names;
use super::partner::{AgreementChoice, agreement_choices, memberships, program_names};
use super::simulator::parse_amount;
use super::web::{Form, PortalError, Visitor, field, render, see_other};
use super::words::{Choice, choices, word};
use crate::agreements;
use crate::claims::{self, Claim, ClaimError, NewClaim, PolicyProblem, UntrackedProblem};
use crate::commissions::queries;
use crate::domain::{
    AgreementId, ClaimId, ClaimKind, ClaimReason, ClaimStatus, CommissionId, OverdueAction,
};
use crate::enrollments;
use crate::http::state::AppState;
use crate::programs;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{NaiveDate, TimeZone, Utc};
use serde::Deserialize;
use std::collections::HashMap;

/// Most claims the partner's page lists (the newest).
const MAX_LISTED: i64 = 200;

pub struct ClaimRow {
    pub id: String,
    /// The other side: the program's name on the partner's page, the
    /// partner's on the program's.
    pub other: String,
    pub kind: String,
    pub subject: String,
    pub amount: String,
    pub status: String,
    pub status_code: &'static str,
    pub opened: String,
    pub deadline: String,
    pub answer: String,
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
    let ms = memberships(state, partner).await?;
    let names = program_names(&ms);
    let listed = claims::newest(&state.db, None, Some(partner), None, MAX_LISTED).await?;
    let orders = disputed_orders(state, &listed).await?;
    let rows = listed
        .iter()
        .map(|c| {
            let program = names.get(&c.program_id).cloned().unwrap_or_default();
            row(&tr, c, program, &orders)
        })
        .collect();
    let chosen = form.map(|f| f.agreement_id.as_str());
    let agreements = agreement_choices(state, partner, &ms, &tr, chosen).await?;
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
    Ok(visitor.html(status, render(&page)?))
}

/// The orders of the commissions these claims dispute, so each claim is
/// named by its order.
pub(super) async fn disputed_orders(
    state: &AppState,
    claims: &[Claim],
) -> Result<Orders, sqlx::Error> {
    let ids: Vec<CommissionId> = claims.iter().filter_map(|c| c.commission_id).collect();
    queries::orders_of(&state.db, &ids).await
}

type Orders = HashMap<CommissionId, String>;

/// What a claim is about, as one line: its order, or the order of the
/// commission it disputes.
fn subject(c: &Claim, orders: &Orders) -> String {
    c.order_id
        .clone()
        .or_else(|| c.commission_id.and_then(|id| orders.get(&id).cloned()))
        .or_else(|| c.commission_id.map(|id| id.to_string()))
        .unwrap_or_default()
}

/// A claim as the lists (and its thread's summary) show it, with the other
/// side's name.
pub(super) fn row(tr: &Tr, c: &Claim, other: String, orders: &Orders) -> ClaimRow {
    let mut answer = c
        .reason_code
        .map(|r| word(tr, "claim-reason", r.as_str()))
        .unwrap_or_default();
    if let Some(note) = &c.decision_note {
        if !answer.is_empty() {
            answer.push_str(": ");
        }
        answer.push_str(note);
    }
    ClaimRow {
        id: c.id.to_string(),
        other,
        kind: word(tr, "claim-kind", c.kind.as_str()),
        subject: subject(c, orders),
        amount: c
            .amount_minor
            .or(c.expected_commission_minor)
            .map(|a| tr.money(a, c.currency))
            .unwrap_or_default(),
        status: word(tr, "claim-status", c.status.as_str()),
        status_code: c.status.as_str(),
        opened: tr.date(c.created_at),
        deadline: tr.date(c.deadline_at),
        answer,
    }
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
    let amount_minor = field(&form.amount).and_then(|a| parse_amount(&tr, a, exponent));
    for p in claims::check_untracked(order_id.as_deref(), occurred_at, amount_minor, now) {
        let (label, problem) = match p {
            UntrackedProblem::NoOrder => ("claim-order", "claim-needs-order"),
            UntrackedProblem::BadOrder(_) => ("claim-order", "claim-bad-order"),
            UntrackedProblem::NoDate => ("claim-date", "claim-needs-date"),
            UntrackedProblem::BadDate(_) => ("claim-date", "claim-date-range"),
            UntrackedProblem::NoAmount | UntrackedProblem::BadAmount(_) => {
                ("claim-amount", "claim-needs-amount")
            }
        };
        bad(label, tr.t(problem));
    }
    let expected = match field(&form.expected) {
        None => None,
        // Within the bounds the API holds `expected_commission_minor` to.
        Some(e) => {
            match parse_amount(&tr, e, exponent).filter(|v| claims::check_expected(*v).is_ok()) {
                Some(v) => Some(v),
                None => {
                    bad("claim-expected", tr.t("claim-needs-amount"));
                    None
                }
            }
        }
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
        Err((
            _,
            e @ (ClaimError::TooLate { .. } | ClaimError::Invalid(..) | ClaimError::Conflict(_)),
        )) => {
            let message = refusal(&visitor.tr(), e);
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

/// Why the core refused a claim, in the reader's words where mitra has
/// them (the program's window); else as the core says it.
pub fn refusal(tr: &Tr, e: ClaimError) -> String {
    match e {
        ClaimError::TooLate { window_days, .. } => too_late(tr, window_days),
        other => other.to_string(),
    }
}

/// Why a sale past the program's claim window of `days` cannot be claimed.
pub fn too_late(tr: &Tr, days: i32) -> String {
    tr.ta("claim-too-late", &[("days", days.to_string())])
}

/// One open claim in the program's queue.
pub struct QueueRow {
    pub id: String,
    pub partner: String,
    pub kind: String,
    pub subject: String,
    pub amount: String,
    pub expected: String,
    pub note: String,
    pub opened: String,
    pub deadline: String,
}

#[derive(Template)]
#[template(path = "portal/merchant_claims.html")]
struct QueuePage {
    l: Layout,
    queue: Vec<QueueRow>,
    decided: Vec<ClaimRow>,
    reasons: Vec<Choice>,
    errors: Vec<String>,
    policy: PolicyForm,
    overdue_choices: Vec<Choice>,
    policy_errors: Vec<String>,
}

/// The claim policy form, as stored or as typed.
#[derive(Deserialize, Default)]
pub struct PolicyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    deadline_days: String,
    #[serde(default)]
    overdue_action: String,
    #[serde(default)]
    window_days: String,
}

impl PolicyForm {
    fn of(p: claims::Policy) -> Self {
        Self {
            csrf: String::new(),
            deadline_days: p.deadline_days.to_string(),
            overdue_action: p.overdue.as_str().to_owned(),
            window_days: p.window_days.map(|d| d.to_string()).unwrap_or_default(),
        }
    }

    /// The policy, or what is wrong with each field, in the reader's words.
    fn parse(&self, tr: &Tr) -> Result<claims::Policy, Vec<String>> {
        // A number that does not parse is out of range as much as one that
        // does: the core's bounds judge both (0 is never in range).
        let days = |raw: &str| raw.trim().parse::<i32>().unwrap_or(0);
        let overdue = OverdueAction::parse(&self.overdue_action).ok();
        let policy = claims::Policy {
            deadline_days: days(&self.deadline_days),
            overdue: overdue.unwrap_or(OverdueAction::Accept),
            window_days: match self.window_days.trim() {
                "" => None,
                raw => Some(days(raw)),
            },
        };
        let problems = policy.problems();
        let mut errors = Vec::new();
        if problems.contains(&PolicyProblem::Deadline) {
            errors.push(tr.t("claim-policy-bad-deadline"));
        }
        if overdue.is_none() {
            errors.push(tr.t("claim-policy-bad-overdue"));
        }
        if problems.contains(&PolicyProblem::Window) {
            errors.push(tr.t("claim-policy-bad-window"));
        }
        if errors.is_empty() {
            Ok(policy)
        } else {
            Err(errors)
        }
    }
}

/// Open claims the program's queue shows at most (the oldest).
const QUEUE_LIMIT: i64 = 200;
/// Decided claims the program's page shows (the newest).
const DECIDED_SHOWN: i64 = 50;

/// GET /portal/merchant/claims: the program's open claims, oldest first,
/// each to accept or decline, and the latest decided ones.
pub async fn queue(
    state: web::Data<AppState>,
    visitor: Visitor,
) -> Result<HttpResponse, PortalError> {
    queue_page(&state, &visitor, Vec::new(), StatusCode::OK).await
}

/// POST /portal/merchant/claims/policy: the program's claim policy, as
/// `PUT /v1/programs/{id}/claim-policy` sets it.
pub async fn set_policy(
    state: web::Data<AppState>,
    visitor: Visitor,
    Form(form): Form<PolicyForm>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    let program = visitor.program()?;
    match form.parse(&visitor.tr()) {
        Ok(policy) => {
            claims::set_policy(&state.db, program, policy).await?;
            Ok(see_other(
                "/portal/merchant/claims?notice=saved#claim-policy",
            ))
        }
        Err(errors) => {
            let typed = (form, errors);
            page_with(
                &state,
                &visitor,
                Vec::new(),
                Some(typed),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

async fn queue_page(
    state: &AppState,
    visitor: &Visitor,
    errors: Vec<String>,
    status: StatusCode,
) -> Result<HttpResponse, PortalError> {
    page_with(state, visitor, errors, None, status).await
}

/// The queue page; `typed`: a refused policy form and its problems.
async fn page_with(
    state: &AppState,
    visitor: &Visitor,
    errors: Vec<String>,
    typed: Option<(PolicyForm, Vec<String>)>,
    status: StatusCode,
) -> Result<HttpResponse, PortalError> {
    let program = visitor.program()?;
    let tr = visitor.tr();
    let (policy, policy_errors) = match typed {
        Some(typed) => typed,
        None => {
            let stored = claims::policy(&state.db, program)
                .await?
                .ok_or(PortalError::NotFound)?;
            (PolicyForm::of(stored), Vec::new())
        }
    };
    let overdue_choices = choices(
        &tr,
        "claim-overdue",
        OverdueAction::ALL.iter().map(|a| a.as_str()),
    );
    let partners = partner_names(state, program).await?;
    let open = claims::list(
        &state.db,
        Some(program),
        None,
        Some(ClaimStatus::Open),
        0,
        QUEUE_LIMIT,
    )
    .await?;
    let mut decided: Vec<Claim> = Vec::new();
    for status in [ClaimStatus::Accepted, ClaimStatus::Declined] {
        decided.extend(
            claims::newest(&state.db, Some(program), None, Some(status), DECIDED_SHOWN).await?,
        );
    }
    decided.sort_by_key(|c| std::cmp::Reverse(c.id));
    decided.truncate(DECIDED_SHOWN as usize);
    let both: Vec<Claim> = open.iter().chain(&decided).cloned().collect();
    let orders = disputed_orders(state, &both).await?;
    let queue = open
        .into_iter()
        .map(|c| QueueRow {
            id: c.id.to_string(),
            partner: partners.get(&c.partner_id).cloned().unwrap_or_default(),
            kind: word(&tr, "claim-kind", c.kind.as_str()),
            subject: subject(&c, &orders),
            amount: c
                .amount_minor
                .map(|a| tr.money(a, c.currency))
                .unwrap_or_default(),
            expected: c
                .expected_commission_minor
                .map(|a| tr.money(a, c.currency))
                .unwrap_or_default(),
            note: c.note.clone().unwrap_or_default(),
            opened: tr.date(c.created_at),
            deadline: tr.date(c.deadline_at),
        })
        .collect();
    let decided = decided
        .iter()
        .map(|c| {
            let partner = partners.get(&c.partner_id).cloned().unwrap_or_default();
            row(&tr, c, partner, &orders)
        })
        .collect();
    let reasons = choices(
        &tr,
        "claim-reason",
        ClaimReason::ALL
            .iter()
            .filter(|r| **r != ClaimReason::DeadlinePassed)
            .map(|r| r.as_str()),
    );
    let page = QueuePage {
        l: Layout::new(visitor, "claims-title"),
        queue,
        decided,
        reasons,
        errors,
        policy,
        overdue_choices,
        policy_errors,
    };
    Ok(visitor.html(status, render(&page)?))
}

#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf: String,
    amount: Option<String>,
    reason_code: Option<String>,
    note: Option<String>,
}

/// POST /portal/merchant/claims/{id}/{accept|decline}: the program's
/// decision, through the same core functions as the API's.
pub async fn decide(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<(String, String)>,
    Form(form): Form<DecisionForm>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    let program = visitor.program()?;
    let tr = visitor.tr();
    let (id, action) = path.into_inner();
    let id: ClaimId = id.parse().map_err(|_| PortalError::NotFound)?;
    let claim = claims::get(&state.db, id)
        .await?
        .filter(|c| c.program_id == program)
        .ok_or(PortalError::NotFound)?;
    let note = field(&form.note).map(|n| n.chars().take(2000).collect::<String>());
    let actor = program.to_string();
    let (result, notice) = match action.as_str() {
        "accept" => {
            let amount = match field(&form.amount) {
                None => None,
                Some(a) => match parse_amount(&tr, a, claim.currency.exponent())
                    .filter(|a| claims::check_expected(*a).is_ok())
                {
                    Some(v) => Some(v),
                    None => {
                        let error = format!(
                            "{}: {}",
                            tr.t("claim-accept-amount"),
                            tr.t("claim-needs-amount")
                        );
                        return queue_page(
                            &state,
                            &visitor,
                            vec![error],
                            StatusCode::UNPROCESSABLE_ENTITY,
                        )
                        .await;
                    }
                },
            };
            let done = claims::accept::accept(&state.db, id, &actor, note.as_deref(), amount).await;
            (done, "claim-accepted")
        }
        "decline" => {
            let Some(reason) = field(&form.reason_code).and_then(|r| r.parse::<ClaimReason>().ok())
            else {
                let error = tr.t("claim-needs-reason");
                return queue_page(
                    &state,
                    &visitor,
                    vec![error],
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            };
            let done = claims::decline(&state.db, id, &actor, reason, note.as_deref()).await;
            (done, "claim-declined")
        }
        _ => return Err(PortalError::NotFound),
    };
    match result {
        Ok(()) => Ok(see_other(&format!(
            "/portal/merchant/claims?notice={notice}"
        ))),
        Err(ClaimError::NotFound(_)) => Err(PortalError::NotFound),
        Err(
            e @ (ClaimError::Invalid(..) | ClaimError::Conflict(_) | ClaimError::TooLate { .. }),
        ) => queue_page(&state, &visitor, vec![e.to_string()], StatusCode::CONFLICT).await,
        Err(ClaimError::Db(e)) => Err(e.into()),
    }
}
