//! The merchant's pages: overview, partners, agreements, conversions (and
//! the review queue), payouts and integration. Every page is scoped to the
//! signed-in person's program; another program's ids answer 404.

use super::chart::Bars;
use super::examples;
use super::layout::Layout;
use super::web::{Form, PortalError, Visitor, field, render, see_other};
use super::words::{Choice, choices, rule, word};
use crate::agreements::{self, Terms};
use crate::commissions::decisions::{self, DecideError, Verdict};
use crate::commissions::reasons::LedgerReason;
use crate::commissions::{payouts, queries};
use crate::conversions;
use crate::domain::{
    AgreementId, BasisPoints, CommissionId, CommissionRules, ConversionId, Email, EnrollmentAction,
    EnrollmentId, EnrollmentReason, EnrollmentStatus, PartnerId, PayoutId, ProgramId, Share,
    Shares,
};
use crate::enrollments::{self, Decision, EnrollError, Invitee, Side};
use crate::http::state::AppState;
use crate::programs::{self, Program};
use crate::rollups::reports::{self, ReportQuery};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{Duration, Utc};
use serde::Deserialize;

async fn program(state: &AppState, visitor: &Visitor) -> Result<Program, PortalError> {
    let id = visitor.program()?;
    programs::get(&state.db, id)
        .await?
        .ok_or(PortalError::NotFound)
}

/// Who acts, as the ledger and the enrollment events record it.
fn actor(p: ProgramId) -> String {
    p.to_string()
}

#[derive(Template)]
#[template(path = "portal/merchant_overview.html")]
struct Overview {
    l: Layout,
    name: String,
    charts: Vec<Bars>,
    clicks: String,
    conversions: String,
    revenue: String,
    commission: String,
    epc: String,
    conversion_rate: String,
    pending_review: i64,
}

/// GET /portal/merchant
pub async fn overview(
    state: web::Data<AppState>,
    visitor: Visitor,
) -> Result<HttpResponse, PortalError> {
    let p = program(&state, &visitor).await?;
    let tr = visitor.tr();
    let to = Utc::now().date_naive();
    let from = to - Duration::days(29);
    let (rows, totals) = reports::daily(
        &state.db,
        &ReportQuery {
            from,
            to,
            program: Some(p.id),
            partner: None,
            link: None,
        },
    )
    .await?;
    let series = |f: fn(&reports::Row) -> i64| -> Vec<(String, i64)> {
        rows.iter().map(|r| (tr.day(r.day), f(r))).collect()
    };
    let currency = p.currency;
    let charts = vec![
        Bars::new(
            tr.t("overview-clicks-chart"),
            &series(|r| r.clicks),
            |v| tr.number(v),
            tr.day(from),
            tr.day(to),
        ),
        Bars::new(
            tr.t("overview-revenue-chart"),
            &series(|r| r.revenue_minor),
            |v| tr.money(v, currency),
            tr.day(from),
            tr.day(to),
        ),
    ];
    let page = Overview {
        l: Layout::new(&visitor, "overview-title"),
        name: p.name.clone(),
        charts,
        clicks: tr.number(totals.clicks),
        conversions: tr.number(totals.conversions),
        revenue: tr.money(totals.revenue_minor, currency),
        commission: tr.money(totals.commission_minor, currency),
        epc: totals
            .epc_minor
            .map(|e| tr.money(e, currency))
            .unwrap_or_else(|| "–".into()),
        conversion_rate: tr.percent(totals.conversion_rate),
        pending_review: queries::review_count(&state.db, p.id).await?,
    };
    Ok(visitor.html(StatusCode::OK, render(&page)?))
}

pub struct MemberRow {
    pub id: String,
    pub name: String,
    pub email: String,
    pub status: String,
    pub status_code: &'static str,
    pub since: String,
    pub note: Option<String>,
    pub reason: Option<String>,
    pub partner_id: String,
    pub has_agreement: bool,
}

#[derive(Template)]
#[template(path = "portal/merchant_partners.html")]
struct PartnersPage {
    l: Layout,
    applications: Vec<MemberRow>,
    members: Vec<MemberRow>,
    reasons: Vec<Choice>,
    invited_url: Option<String>,
    error: Option<String>,
}

async fn partners_page(
    state: &AppState,
    visitor: &Visitor,
    invited_url: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, PortalError> {
    let p = program(state, visitor).await?;
    let tr = visitor.tr();
    let list = enrollments::list(&state.db, Side::Program(p.id), None, 0, 1000).await?;
    let with_agreement: Vec<PartnerId> = agreements::list(&state.db, Some(p.id), None, 0, 1000)
        .await?
        .iter()
        .flat_map(|a| a.partners.iter().map(|s| s.partner_id))
        .collect();
    let mut applications = Vec::new();
    let mut members = Vec::new();
    for e in list.into_iter().rev() {
        // As in the API: an invited partner's name shows once it has
        // answered; contact details only while it is active.
        let named = !matches!(
            e.status,
            EnrollmentStatus::Invited | EnrollmentStatus::Declined
        );
        let contact = match (e.status, e.partner_id) {
            (EnrollmentStatus::Active, Some(id)) => crate::partners::get(&state.db, id)
                .await?
                .map(|x| x.email)
                .unwrap_or_default(),
            _ => e.email.clone().unwrap_or_default(),
        };
        let row = MemberRow {
            id: e.id.to_string(),
            name: e.partner_name.clone().filter(|_| named).unwrap_or_default(),
            email: contact,
            status: word(&tr, "enrollment-status", e.status.as_str()),
            status_code: e.status.as_str(),
            since: tr.date(e.active_since.unwrap_or(e.updated_at)),
            note: e.application_note.clone().or(e.note.clone()),
            reason: e
                .reason_code
                .map(|r| word(&tr, "enrollment-reason", r.as_str())),
            partner_id: e.partner_id.map(|p| p.to_string()).unwrap_or_default(),
            has_agreement: e.partner_id.is_some_and(|id| with_agreement.contains(&id)),
        };
        if e.status == EnrollmentStatus::Applied {
            applications.push(row);
        } else {
            members.push(row);
        }
    }
    let reasons = choices(
        &tr,
        "enrollment-reason",
        EnrollmentReason::ALL.iter().map(|r| r.as_str()),
    );
    let page = PartnersPage {
        l: Layout::new(visitor, "partners-title"),
        applications,
        members,
        reasons,
        invited_url,
        error,
    };
    Ok(visitor.html(status, render(&page)?))
}

/// GET /portal/merchant/partners
pub async fn partners(
    state: web::Data<AppState>,
    visitor: Visitor,
) -> Result<HttpResponse, PortalError> {
    partners_page(&state, &visitor, None, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    csrf: String,
    email: String,
    note: Option<String>,
}

/// POST /portal/merchant/partners/invite: an invitation by e-mail; its
/// accept link is shown once, to send to the partner.
pub async fn invite(
    state: web::Data<AppState>,
    visitor: Visitor,
    Form(form): Form<InviteForm>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    let p = visitor.program()?;
    let tr = visitor.tr();
    let Ok(email) = Email::parse(&form.email) else {
        let error = Some(tr.t("invite-bad-email"));
        return partners_page(
            &state,
            &visitor,
            None,
            error,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let decision = Decision {
        actor: actor(p),
        reason_code: None,
        note: field(&form.note).map(|n| n.chars().take(2000).collect()),
    };
    match enrollments::invite(&state.db, p, &Invitee::Email(email), &decision).await {
        Ok((_, token)) => {
            let url = format!(
                "{}/portal/invitations/{token}",
                state.settings.public_base()
            );
            partners_page(&state, &visitor, Some(url), None, StatusCode::OK).await
        }
        Err(EnrollError::Move(_) | EnrollError::Conflict(_)) => {
            let error = Some(tr.t("invite-already"));
            partners_page(&state, &visitor, None, error, StatusCode::CONFLICT).await
        }
        Err(EnrollError::NotFound(_) | EnrollError::UnknownPartner) => Err(PortalError::NotFound),
        Err(EnrollError::Db(e)) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf: String,
    reason_code: Option<String>,
    note: Option<String>,
}

/// POST /portal/merchant/enrollments/{id}/{approve|reject|deactivate}
pub async fn decide_enrollment(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<(String, String)>,
    Form(form): Form<DecisionForm>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    let p = visitor.program()?;
    let (id, action) = path.into_inner();
    let id: EnrollmentId = id.parse().map_err(|_| PortalError::NotFound)?;
    let action = match action.as_str() {
        "approve" => EnrollmentAction::Approve,
        "reject" => EnrollmentAction::Reject,
        "deactivate" => EnrollmentAction::Deactivate,
        _ => return Err(PortalError::NotFound),
    };
    let e = enrollments::get(&state.db, id)
        .await?
        .filter(|e| e.program_id == p && e.partner_id.is_some())
        .ok_or(PortalError::NotFound)?;
    let reason_code = field(&form.reason_code).and_then(|r| EnrollmentReason::parse(r).ok());
    if action != EnrollmentAction::Approve && reason_code.is_none() {
        let error = Some(visitor.tr().t("decision-needs-reason"));
        return partners_page(
            &state,
            &visitor,
            None,
            error,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let decision = Decision {
        actor: actor(p),
        reason_code,
        note: field(&form.note).map(|n| n.chars().take(2000).collect()),
    };
    match enrollments::act(&state.db, e.id, action, &decision).await {
        Ok(_) => Ok(see_other("/portal/merchant/partners?notice=decided")),
        Err(EnrollError::Move(_) | EnrollError::Conflict(_)) => {
            let error = Some(visitor.tr().t("decision-not-now"));
            partners_page(&state, &visitor, None, error, StatusCode::CONFLICT).await
        }
        Err(EnrollError::NotFound(_) | EnrollError::UnknownPartner) => Err(PortalError::NotFound),
        Err(EnrollError::Db(e)) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct AgreementForm {
    #[serde(default)]
    csrf: String,
    partner_id: String,
}

/// POST /portal/merchant/agreements: an agreement giving one active
/// partner the whole commission at the program's terms.
pub async fn create_agreement(
    state: web::Data<AppState>,
    visitor: Visitor,
    Form(form): Form<AgreementForm>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    let p = visitor.program()?;
    let partner: PartnerId = form.partner_id.parse().map_err(|_| PortalError::NotFound)?;
    // The rule every agreement follows: only active members are named.
    if !enrollments::is_active(&state.db, p, partner).await? {
        return Err(PortalError::NotFound);
    }
    let shares = Shares::new(vec![Share {
        partner_id: partner,
        share_bps: BasisPoints::WHOLE,
    }])
    .map_err(|e| PortalError::Internal(anyhow::anyhow!("one whole share: {e}")))?;
    let terms = Terms {
        shares,
        commission: None,
        coupon_codes: Vec::new(),
        valid_from: None,
        valid_until: None,
    };
    let id = agreements::insert(&state.db, p, &terms)
        .await
        .map_err(|e| PortalError::Internal(e.into()))?;
    Ok(see_other(&format!(
        "/portal/merchant/agreements/{id}?notice=agreement-created"
    )))
}

pub struct AgreementRow {
    pub id: String,
    pub version: String,
    pub partners: String,
    pub terms: String,
    pub coupons: String,
}

#[derive(Template)]
#[template(path = "portal/merchant_agreements.html")]
struct AgreementsPage {
    l: Layout,
    rows: Vec<AgreementRow>,
}

/// Names of the program's partners, for showing shares.
pub(super) async fn partner_names(
    state: &AppState,
    program: ProgramId,
) -> Result<std::collections::HashMap<PartnerId, String>, PortalError> {
    Ok(
        enrollments::list(&state.db, Side::Program(program), None, 0, 5000)
            .await?
            .into_iter()
            .filter_map(|e| Some((e.partner_id?, e.partner_name?)))
            .collect(),
    )
}

fn terms_text(tr: &super::i18n::Tr, rules: &serde_json::Value, p: &Program) -> String {
    let mut parts = Vec::new();
    for event in ["sale", "lead"] {
        let r = &rules[event];
        let ev = tr.t(&format!("event-{event}"));
        if let Some(bps) = r["percent_bps"].as_i64() {
            parts.push(format!("{ev}: {}", tr.bps(bps)));
        } else if let Some(flat) = r["flat_minor"].as_i64() {
            parts.push(format!("{ev}: {}", tr.money(flat, p.currency)));
        }
    }
    parts.join(" · ")
}

/// GET /portal/merchant/agreements
pub async fn agreements_list(
    state: web::Data<AppState>,
    visitor: Visitor,
) -> Result<HttpResponse, PortalError> {
    let p = program(&state, &visitor).await?;
    let tr = visitor.tr();
    let names = partner_names(&state, p.id).await?;
    let rows = agreements::list(&state.db, Some(p.id), None, 0, 1000)
        .await
        .map_err(PortalError::Internal)?
        .into_iter()
        .map(|a| AgreementRow {
            id: a.id.to_string(),
            version: tr.ta("agreement-version", &[("version", a.version.to_string())]),
            partners: a
                .partners
                .iter()
                .map(|s| {
                    format!(
                        "{} ({})",
                        names.get(&s.partner_id).cloned().unwrap_or_default(),
                        tr.bps(i64::from(s.share_bps))
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            terms: terms_text(&tr, &a.effective_commission, &p),
            coupons: a.coupon_codes.join(", "),
        })
        .collect();
    let page = AgreementsPage {
        l: Layout::new(&visitor, "agreements-title"),
        rows,
    };
    Ok(visitor.html(StatusCode::OK, render(&page)?))
}

pub struct VersionColumn {
    pub version: String,
    pub created: String,
    pub partners: String,
    pub terms: String,
    pub coupons: String,
    pub validity: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "portal/merchant_agreement.html")]
struct AgreementPage {
    l: Layout,
    id: String,
    versions: Vec<VersionColumn>,
    sale_percent: String,
}

/// GET /portal/merchant/agreements/{id}: every version, side by side.
pub async fn agreement(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<String>,
) -> Result<HttpResponse, PortalError> {
    let p = program(&state, &visitor).await?;
    let tr = visitor.tr();
    let id: AgreementId = path.parse().map_err(|_| PortalError::NotFound)?;
    let versions = agreements::versions(&state.db, id)
        .await
        .map_err(PortalError::Internal)?;
    if versions.first().is_none_or(|v| v.program_id != p.id) {
        return Err(PortalError::NotFound);
    }
    let names = partner_names(&state, p.id).await?;
    let sale_percent = versions
        .last()
        .and_then(|v| v.effective_commission["sale"]["percent_bps"].as_i64())
        .map(|bps| format!("{}", bps as f64 / 100.0))
        .unwrap_or_default();
    let columns = versions
        .iter()
        .map(|v| VersionColumn {
            version: tr.ta("agreement-version", &[("version", v.version.to_string())]),
            created: tr.datetime(v.created_at),
            partners: v
                .partners
                .iter()
                .map(|s| {
                    format!(
                        "{} ({})",
                        names.get(&s.partner_id).cloned().unwrap_or_default(),
                        tr.bps(i64::from(s.share_bps))
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            terms: terms_text(&tr, &v.effective_commission, &p),
            coupons: v.coupon_codes.join(", "),
            validity: match (v.valid_from, v.valid_until) {
                (None, None) => tr.t("always"),
                (from, until) => format!(
                    "{} – {}",
                    from.map(|f| tr.date(f)).unwrap_or_default(),
                    until.map(|u| tr.date(u)).unwrap_or_default()
                ),
            },
            current: v.version == v.current_version,
        })
        .collect();
    let page = AgreementPage {
        l: Layout::new(&visitor, "agreement-title"),
        id: id.to_string(),
        versions: columns,
        sale_percent,
    };
    Ok(visitor.html(StatusCode::OK, render(&page)?))
}

#[derive(Deserialize)]
pub struct RateForm {
    #[serde(default)]
    csrf: String,
    sale_percent: String,
}

/// POST /portal/merchant/agreements/{id}/versions: new terms for sales (a
/// percentage), kept as version n+1; everything else stays as it was.
pub async fn new_version(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<String>,
    Form(form): Form<RateForm>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    let p = visitor.program()?;
    let id: AgreementId = path.parse().map_err(|_| PortalError::NotFound)?;
    let current = agreements::get(&state.db, id, None)
        .await
        .map_err(PortalError::Internal)?
        .filter(|a| a.program_id == p)
        .ok_or(PortalError::NotFound)?;
    let bps = parse_decimal(&form.sale_percent, 2)
        .filter(|b| (0..=10_000).contains(b))
        .ok_or_else(|| PortalError::BadRequest("sale_percent".into()))?;
    let mut commission = current
        .commission
        .clone()
        .unwrap_or_else(|| serde_json::json!({}));
    commission["sale"] = serde_json::json!({ "percent_bps": bps });
    let rules =
        CommissionRules::parse(&commission).map_err(|e| PortalError::BadRequest(e.to_string()))?;
    let shares = Shares::new(
        current
            .partners
            .iter()
            .map(|s| {
                Ok(Share {
                    partner_id: s.partner_id,
                    share_bps: BasisPoints::new(i64::from(s.share_bps))?,
                })
            })
            .collect::<Result<Vec<_>, crate::domain::BasisPointsError>>()
            .map_err(|e| PortalError::Internal(anyhow::anyhow!("stored share: {e}")))?,
    )
    .map_err(|e| PortalError::Internal(anyhow::anyhow!("stored shares: {e}")))?;
    let coupon_codes = current
        .coupon_codes
        .iter()
        .filter_map(|c| crate::domain::CouponCode::parse(c).ok())
        .collect();
    let terms = Terms {
        shares,
        commission: Some(rules),
        coupon_codes,
        valid_from: current.valid_from,
        valid_until: current.valid_until,
    };
    agreements::new_version(&state.db, id, Some(current.current_version), &terms)
        .await
        .map_err(|e| PortalError::Internal(e.into()))?;
    Ok(see_other(&format!(
        "/portal/merchant/agreements/{id}?notice=version-created"
    )))
}

/// A decimal written by a person ("12.5", "12,50") as an integer scaled by
/// 10^`digits`; none when it has more digits than that, or is not a number.
pub fn parse_decimal(s: &str, digits: u32) -> Option<i64> {
    let s = s.trim().replace(['\u{a0}', ' '], "");
    let (whole, frac) = match s.rsplit_once(['.', ',']) {
        Some((w, f)) => (w, f),
        None => (s.as_str(), ""),
    };
    if whole.is_empty() && frac.is_empty()
        || frac.len() > digits as usize
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<width$}", width = digits as usize)
            .parse()
            .ok()?
    };
    whole.checked_mul(10i64.pow(digits))?.checked_add(frac)
}

pub struct ConversionRow {
    pub id: String,
    pub order: String,
    pub event: String,
    pub amount: String,
    pub status: String,
    pub reason: Option<String>,
    pub when: String,
    pub commissions: Vec<String>,
}

pub struct ReviewRow {
    pub conversion_id: String,
    pub order: String,
    pub partner: String,
    pub amount: String,
    pub commission: String,
    pub signals: String,
    pub when: String,
}

#[derive(Template)]
#[template(path = "portal/merchant_conversions.html")]
struct ConversionsPage {
    l: Layout,
    order_id: String,
    found: Vec<ConversionRow>,
    searched: bool,
    queue: Vec<ReviewRow>,
}

#[derive(Deserialize)]
pub struct OrderQuery {
    order_id: Option<String>,
}

/// GET /portal/merchant/conversions?order_id=: search, and the review queue.
pub async fn conversions(
    state: web::Data<AppState>,
    visitor: Visitor,
    query: web::Query<OrderQuery>,
) -> Result<HttpResponse, PortalError> {
    let p = program(&state, &visitor).await?;
    let tr = visitor.tr();
    let names = partner_names(&state, p.id).await?;
    let order = field(&query.order_id).map(str::to_owned);
    let found = match &order {
        Some(o) if crate::conversions::check_reference(o).is_ok() => {
            conversions::by_order(&state.db, p.id, o).await?
        }
        _ => Vec::new(),
    };
    let found = found
        .into_iter()
        .map(|c| ConversionRow {
            id: c.id.to_string(),
            order: c.order_id.clone(),
            event: word(&tr, "event", c.event.as_str()),
            amount: tr.money(c.amount_minor, c.currency),
            status: word(&tr, "conversion-status", c.status.as_str()),
            reason: c.reason.map(|r| word(&tr, "conversion-reason", r.as_str())),
            when: tr.datetime(c.occurred_at),
            commissions: c
                .commissions
                .iter()
                .map(|m| {
                    format!(
                        "{}: {} · {} · {}{}",
                        names.get(&m.partner_id).cloned().unwrap_or_default(),
                        tr.money(m.amount_minor, m.currency),
                        word(&tr, "commission-status", m.status.as_str()),
                        rule(&tr, &m.rule, c.amount_minor, m.currency),
                        if m.review {
                            format!(" · {}", tr.t("held-for-review"))
                        } else {
                            String::new()
                        }
                    )
                })
                .collect(),
        })
        .collect();
    let queue = queries::review_queue(&state.db, p.id, 500)
        .await?
        .into_iter()
        .map(|h| ReviewRow {
            conversion_id: h.conversion_id.to_string(),
            order: h.order_id,
            partner: h.partner_name,
            amount: tr.money(h.conversion_amount_minor, h.currency),
            commission: tr.money(h.amount_minor, h.currency),
            signals: h
                .fraud_reasons
                .iter()
                .map(|s| word(&tr, "fraud", s.as_str()))
                .collect::<Vec<_>>()
                .join("; "),
            when: tr.datetime(h.occurred_at),
        })
        .collect();
    let page = ConversionsPage {
        l: Layout::new(&visitor, "conversions-title"),
        searched: order.is_some(),
        order_id: order.unwrap_or_default(),
        found,
        queue,
    };
    Ok(visitor.html(StatusCode::OK, render(&page)?))
}

#[derive(Deserialize)]
pub struct ReviewForm {
    #[serde(default)]
    csrf: String,
    reason: Option<String>,
}

/// POST /portal/merchant/conversions/{id}/{approve|reject}: clears or
/// rejects every held commission of a conversion of this program, each
/// through the same decision the API takes.
pub async fn review(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<(String, String)>,
    Form(form): Form<ReviewForm>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    let p = visitor.program()?;
    let (id, action) = path.into_inner();
    let conversion: ConversionId = id.parse().map_err(|_| PortalError::NotFound)?;
    let reason = field(&form.reason).map(|r| r.chars().take(500).collect::<String>());
    let cleared = LedgerReason::ClearedAfterReview.to_string();
    let verdict = match (action.as_str(), reason.as_deref()) {
        ("approve", r) => Verdict::Approve(Some(r.unwrap_or(&cleared))),
        ("reject", Some(r)) => Verdict::Reject(r),
        ("reject", None) => {
            return Ok(see_other(
                "/portal/merchant/conversions?notice=reject-needs-reason",
            ));
        }
        _ => return Err(PortalError::NotFound),
    };
    let held: Vec<CommissionId> = queries::review_queue(&state.db, p, 10_000)
        .await?
        .into_iter()
        .filter(|h| h.conversion_id == conversion)
        .map(|h| h.id)
        .collect();
    if held.is_empty() {
        return Err(PortalError::NotFound);
    }
    for id in held {
        match decisions::decide(&state.db, &state.metrics, Some(p), id, verdict, &actor(p)).await {
            // Someone decided it meanwhile: nothing left to do for it.
            Ok(_) | Err(DecideError::NotPending(_)) => {}
            Err(DecideError::NotFound) => return Err(PortalError::NotFound),
            Err(DecideError::Db(e)) => return Err(e.into()),
        }
    }
    Ok(see_other(match verdict {
        Verdict::Approve(_) => "/portal/merchant/conversions?notice=review-approved",
        Verdict::Reject(_) => "/portal/merchant/conversions?notice=review-rejected",
    }))
}

pub struct PreviewRow {
    pub partner: String,
    pub amount: String,
    pub count: String,
}

pub struct PayoutListRow {
    pub id: String,
    pub date: String,
}

#[derive(Template)]
#[template(path = "portal/merchant_payouts.html")]
struct PayoutsPage {
    l: Layout,
    preview: Vec<PreviewRow>,
    total: String,
    min: String,
    currency: String,
    payouts: Vec<PayoutListRow>,
}

#[derive(Deserialize)]
pub struct MinQuery {
    min: Option<String>,
}

/// GET /portal/merchant/payouts?min=: what a payout now would pay, and the past payouts.
pub async fn payouts_page(
    state: web::Data<AppState>,
    visitor: Visitor,
    query: web::Query<MinQuery>,
) -> Result<HttpResponse, PortalError> {
    let p = program(&state, &visitor).await?;
    let tr = visitor.tr();
    let min = field(&query.min)
        .and_then(|m| parse_decimal(m, p.currency.exponent()))
        .filter(|m| *m >= 1)
        .unwrap_or(1);
    let preview = payouts::preview(&state.db, p.id, min).await?;
    let total: i64 = preview.iter().map(|i| i.amount_minor).sum();
    let mut list = payouts::list(&state.db, p.id, 0, 500).await?;
    list.reverse();
    let page = PayoutsPage {
        l: Layout::new(&visitor, "payouts-title"),
        preview: preview
            .iter()
            .map(|i| PreviewRow {
                partner: i.partner_name.clone(),
                amount: tr.money(i.amount_minor, i.currency),
                count: tr.number(i64::from(i.commission_count)),
            })
            .collect(),
        total: tr.money(total, p.currency),
        min: p.currency.format_minor(min),
        currency: p.currency.code().to_owned(),
        payouts: list
            .into_iter()
            .map(|x| PayoutListRow {
                id: x.id.to_string(),
                date: tr.datetime(x.created_at),
            })
            .collect(),
    };
    Ok(visitor.html(StatusCode::OK, render(&page)?))
}

#[derive(Deserialize)]
pub struct RunForm {
    #[serde(default)]
    csrf: String,
    min: Option<String>,
}

/// POST /portal/merchant/payouts: runs a payout, as `POST /v1/programs/{id}/payouts` does.
pub async fn run_payout(
    state: web::Data<AppState>,
    visitor: Visitor,
    Form(form): Form<RunForm>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    let p = program(&state, &visitor).await?;
    let min = field(&form.min)
        .map(|m| parse_decimal(m, p.currency.exponent()))
        .unwrap_or(Some(1))
        .filter(|m| (1..=crate::conversions::MAX_AMOUNT_MINOR).contains(m))
        .ok_or_else(|| PortalError::BadRequest("min".into()))?;
    let payout = payouts::create(&state.db, p.id, min, &actor(p.id)).await?;
    payouts::record(&state.metrics, &payout);
    tracing::info!(payout = %payout.id, program = %p.id, items = payout.items.len(), "payout made in the portal");
    Ok(see_other("/portal/merchant/payouts?notice=payout-made"))
}

/// GET /portal/merchant/payouts/{id}.csv
pub async fn payout_csv(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<String>,
) -> Result<HttpResponse, PortalError> {
    let p = visitor.program()?;
    let id: PayoutId = path
        .strip_suffix(".csv")
        .and_then(|i| i.parse().ok())
        .ok_or(PortalError::NotFound)?;
    let payout = payouts::get(&state.db, id)
        .await?
        .filter(|x| x.program_id == p)
        .ok_or(PortalError::NotFound)?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"payout-{id}.csv\""),
        ))
        .body(payouts::to_csv(&payout)))
}

#[derive(Template)]
#[template(path = "portal/merchant_integration.html")]
struct IntegrationPage {
    l: Layout,
    program_id: String,
    endpoint: String,
    new_secret: Option<String>,
    examples: Vec<examples::Example>,
}

fn integration_page(
    state: &AppState,
    visitor: &Visitor,
    p: &Program,
    new_secret: Option<String>,
) -> Result<HttpResponse, PortalError> {
    let endpoint = format!(
        "{}/v1/programs/{}/conversions",
        state.settings.public_base(),
        p.id
    );
    let page = IntegrationPage {
        l: Layout::new(visitor, "integration-title"),
        program_id: p.id.to_string(),
        examples: examples::all(&endpoint, p.currency),
        endpoint,
        new_secret,
    };
    Ok(visitor.html(StatusCode::OK, render(&page)?))
}

/// GET /portal/merchant/integration
pub async fn integration(
    state: web::Data<AppState>,
    visitor: Visitor,
) -> Result<HttpResponse, PortalError> {
    let p = program(&state, &visitor).await?;
    integration_page(&state, &visitor, &p, None)
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

/// POST /portal/merchant/integration/secret: rolls the webhook secret (the
/// old one verifies for 24 hours more) and shows the new one, once.
pub async fn roll_secret(
    state: web::Data<AppState>,
    visitor: Visitor,
    Form(form): Form<CsrfOnly>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    let p = program(&state, &visitor).await?;
    let grace = std::time::Duration::from_secs(24 * 3600);
    let secret = crate::conversions::webhook_context::roll_secret(&state.db, p.id, grace).await?;
    state.webhook_contexts.forget(p.id);
    tracing::info!(program = %p.id, "webhook secret rolled in the portal");
    integration_page(&state, &visitor, &p, Some(secret))
}

#[cfg(test)]
mod tests {
    use super::parse_decimal;

    #[test]
    fn people_write_decimals_with_a_point_or_a_comma() {
        assert_eq!(parse_decimal("12.5", 2), Some(1250));
        assert_eq!(parse_decimal("12,50", 2), Some(1250));
        assert_eq!(parse_decimal("12", 2), Some(1200));
        assert_eq!(parse_decimal(" 0.01 ", 2), Some(1));
        assert_eq!(parse_decimal("12.505", 2), None);
        assert_eq!(parse_decimal("-1", 2), None);
        assert_eq!(parse_decimal("abc", 2), None);
        assert_eq!(parse_decimal("", 2), None);
        assert_eq!(parse_decimal("7", 0), Some(7));
    }
}
