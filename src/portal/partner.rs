//! The partner's pages: dashboard, programs, links, commissions,
//! statement and payouts. Every page is scoped to the signed-in partner;
//! an id of anything else answers 404, as in the API.

use super::chart::Bars;
use super::claims::too_late;
use super::disputes::open_disputes;
use super::layout::Layout;
use super::signed_statements::{self, SignedRow};
use super::web::{Form, PortalError, Visitor, field, render, see_other};
use super::words::{ledger_reason, rule, word};
use crate::agreements;
use crate::commissions::payouts;
use crate::commissions::queries::{self, Filter};
use crate::domain::{
    AgreementId, Bucket, CommissionStatus, Currency, EnrollmentAction, EnrollmentId,
    EnrollmentStatus, LedgerKind, LinkId, PartnerId, ProgramId,
};
use crate::enrollments::{self, Decision, EnrollError, Side};
use crate::http::state::AppState;
use crate::links::{self, IssueError, Issuer};
use crate::programs;
use crate::rollups::reports::{self, ReportQuery};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{Duration, NaiveDate, TimeZone, Utc};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

/// The partner's memberships, newest moves first.
pub(super) async fn memberships(
    state: &AppState,
    partner: PartnerId,
) -> Result<Vec<enrollments::Enrollment>, PortalError> {
    Ok(enrollments::list(&state.db, Side::Partner(partner), None, 0, 500).await?)
}

/// Names of programs by id, from the partner's memberships.
pub(super) fn program_names(ms: &[enrollments::Enrollment]) -> HashMap<ProgramId, String> {
    ms.iter()
        .map(|e| (e.program_id, e.program_name.clone()))
        .collect()
}

pub struct BalanceRow {
    pub pending: String,
    pub approved: String,
    pub paid: String,
}

#[derive(Template)]
#[template(path = "portal/partner_dashboard.html")]
struct Dashboard {
    l: Layout,
    charts: Vec<Bars>,
    total_clicks: String,
    total_conversions: String,
    earned: Vec<String>,
    balances: Vec<BalanceRow>,
    next_payout: Vec<String>,
    programs: usize,
}

/// The last 30 days, today included, in UTC days (as the roll-ups count).
fn last_30_days() -> (NaiveDate, NaiveDate) {
    let to = Utc::now().date_naive();
    (to - Duration::days(29), to)
}

/// GET /portal/partner
pub async fn dashboard(
    state: web::Data<AppState>,
    visitor: Visitor,
) -> Result<HttpResponse, PortalError> {
    let partner = visitor.partner()?;
    let tr = visitor.tr();
    let (from, to) = last_30_days();
    let query = ReportQuery {
        from,
        to,
        program: None,
        partner: Some(partner),
        link: None,
    };
    // Independent reads, each on its own connection: the page waits for the slowest only.
    let ((rows, totals), earned, balance, ms) = tokio::try_join!(
        reports::daily(&state.db, &query),
        reports::partner_earnings(&state.db, partner, from, to),
        queries::balance(&state.db, partner),
        enrollments::list(&state.db, Side::Partner(partner), None, 0, 500),
    )?;
    let mut by_currency: BTreeMap<Currency, i64> = BTreeMap::new();
    for e in &earned {
        *by_currency.entry(e.currency).or_default() += e.commission_minor;
    }
    let clicks: Vec<(String, i64)> = rows.iter().map(|r| (tr.day(r.day), r.clicks)).collect();
    let chart = |title: &str, values: &[(String, i64)], f: &dyn Fn(i64) -> String| {
        Bars::new(tr.t(title), values, f, tr.day(from), tr.day(to))
    };
    let clicks = chart("dashboard-clicks-chart", &clicks, &|v| tr.number(v));
    // The chart shows the currency the partner earned most in; the totals list every one.
    let main = by_currency.iter().max_by_key(|(_, v)| **v).map(|(c, _)| *c);
    let earnings = main.map(|currency| {
        let values: Vec<(String, i64)> = rows
            .iter()
            .map(|r| {
                let v = earned
                    .iter()
                    .filter(|e| e.day == r.day && e.currency == currency)
                    .map(|e| e.commission_minor)
                    .sum();
                (tr.day(r.day), v)
            })
            .collect();
        chart("dashboard-earnings-chart", &values, &|v| {
            tr.money(v, currency)
        })
    });
    let balances = balance
        .balances
        .iter()
        .map(|b| BalanceRow {
            pending: tr.money(b.pending_minor, b.currency),
            approved: tr.money(b.approved_minor, b.currency),
            paid: tr.money(b.paid_minor, b.currency),
        })
        .collect();
    let next_payout = balance
        .balances
        .iter()
        .filter(|b| b.approved_minor > 0)
        .map(|b| tr.money(b.approved_minor, b.currency))
        .collect();
    let programs = ms
        .iter()
        .filter(|e| e.status == EnrollmentStatus::Active)
        .count();
    let page = Dashboard {
        l: Layout::new(&visitor, "dashboard-title"),
        charts: std::iter::once(clicks).chain(earnings).collect(),
        total_clicks: tr.number(totals.clicks),
        total_conversions: tr.number(totals.conversions),
        earned: by_currency.iter().map(|(c, v)| tr.money(*v, *c)).collect(),
        balances,
        next_payout,
        programs,
    };
    Ok(visitor.html(StatusCode::OK, render(&page)?))
}

pub struct MembershipRow {
    pub id: String,
    pub program_id: String,
    pub program: String,
    pub status: String,
    pub since: String,
    pub note: Option<String>,
    pub reason: Option<String>,
    /// A program's invitation to this partner by id: it may answer here.
    pub can_answer: bool,
}

pub struct PublicRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub terms: String,
}

#[derive(Template)]
#[template(path = "portal/partner_programs.html")]
struct ProgramsPage {
    l: Layout,
    active: Vec<MembershipRow>,
    invited: Vec<MembershipRow>,
    others: Vec<MembershipRow>,
    public: Vec<PublicRow>,
    error: Option<String>,
}

fn rules_text(tr: &super::i18n::Tr, p: &programs::Program) -> String {
    let Ok(rules) = p.rules() else {
        return String::new();
    };
    let value = rules.to_json();
    let mut parts = Vec::new();
    for event in ["sale", "lead"] {
        let r = &value[event];
        let ev = tr.t(&format!("event-{event}"));
        if let Some(bps) = r["percent_bps"].as_i64() {
            parts.push(format!("{}: {}", ev, tr.bps(bps)));
        } else if let Some(flat) = r["flat_minor"].as_i64() {
            parts.push(format!("{}: {}", ev, tr.money(flat, p.currency)));
        }
    }
    parts.join(" · ")
}

async fn programs_page(
    state: &AppState,
    visitor: &Visitor,
    error: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, PortalError> {
    let partner = visitor.partner()?;
    let tr = visitor.tr();
    let ms = memberships(state, partner).await?;
    let row = |e: &enrollments::Enrollment| MembershipRow {
        id: e.id.to_string(),
        program_id: e.program_id.to_string(),
        program: e.program_name.clone(),
        status: word(&tr, "enrollment-status", e.status.as_str()),
        since: tr.date(e.active_since.unwrap_or(e.updated_at)),
        note: e.note.clone(),
        reason: e
            .reason_code
            .map(|r| word(&tr, "enrollment-reason", r.as_str())),
        can_answer: e.status == EnrollmentStatus::Invited && e.partner_id == Some(partner),
    };
    let mut active = Vec::new();
    let mut invited = Vec::new();
    let mut others = Vec::new();
    for e in &ms {
        match e.status {
            EnrollmentStatus::Active => active.push(row(e)),
            EnrollmentStatus::Invited => invited.push(row(e)),
            _ => others.push(row(e)),
        }
    }
    let joined: Vec<ProgramId> = ms
        .iter()
        .filter(|e| !matches!(e.status, EnrollmentStatus::Declined))
        .map(|e| e.program_id)
        .collect();
    let public = programs::list_public(&state.db, 0, 200)
        .await?
        .into_iter()
        .filter(|p| !joined.contains(&p.id))
        .map(|p| PublicRow {
            id: p.id.to_string(),
            terms: rules_text(&tr, &p),
            name: p.name,
            description: p.description,
        })
        .collect();
    let page = ProgramsPage {
        l: Layout::new(visitor, "programs-title"),
        active,
        invited,
        others,
        public,
        error,
    };
    Ok(visitor.html(status, render(&page)?))
}

/// GET /portal/partner/programs
pub async fn programs(
    state: web::Data<AppState>,
    visitor: Visitor,
) -> Result<HttpResponse, PortalError> {
    programs_page(&state, &visitor, None, StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct NoteForm {
    #[serde(default)]
    csrf: String,
    note: Option<String>,
}

/// POST /portal/partner/programs/{id}/apply
pub async fn apply(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<String>,
    Form(form): Form<NoteForm>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    let partner = visitor.partner()?;
    let program: ProgramId = path.parse().map_err(|_| PortalError::NotFound)?;
    let note = field(&form.note).map(|n| n.chars().take(2000).collect::<String>());
    match enrollments::apply(&state.db, program, partner, note.as_deref()).await {
        Ok(_) => Ok(see_other("/portal/partner/programs?notice=applied")),
        Err(EnrollError::NotFound(_) | EnrollError::UnknownPartner) => Err(PortalError::NotFound),
        Err(EnrollError::Move(m)) => {
            let error = Some(match m {
                crate::domain::TransitionError::CoolingDown(at) => visitor
                    .tr()
                    .ta("apply-cooling-down", &[("date", visitor.tr().date(at))]),
                _ => visitor.tr().t("apply-not-now"),
            });
            programs_page(&state, &visitor, error, StatusCode::CONFLICT).await
        }
        Err(EnrollError::Conflict(_)) => {
            let error = Some(visitor.tr().t("apply-not-now"));
            programs_page(&state, &visitor, error, StatusCode::CONFLICT).await
        }
        Err(EnrollError::Db(e)) => Err(e.into()),
    }
}

/// POST /portal/partner/enrollments/{id}/{accept|decline}: an invitation
/// addressed to this partner, answered as the API answers it.
pub async fn answer(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<(String, String)>,
    Form(form): Form<NoteForm>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    let partner = visitor.partner()?;
    let (id, answer) = path.into_inner();
    let id: EnrollmentId = id.parse().map_err(|_| PortalError::NotFound)?;
    let action = match answer.as_str() {
        "accept" => EnrollmentAction::Accept,
        "decline" => EnrollmentAction::Decline,
        _ => return Err(PortalError::NotFound),
    };
    let e = enrollments::get(&state.db, id)
        .await?
        .filter(|e| e.partner_id == Some(partner))
        .ok_or(PortalError::NotFound)?;
    let decision = Decision {
        actor: partner.to_string(),
        ..Decision::default()
    };
    match enrollments::act(&state.db, e.id, action, &decision).await {
        Ok(_) => Ok(see_other(match action {
            EnrollmentAction::Accept => "/portal/partner/programs?notice=invitation-accepted",
            _ => "/portal/partner/programs?notice=invitation-declined",
        })),
        Err(EnrollError::Move(_) | EnrollError::Conflict(_)) => {
            let error = Some(visitor.tr().t("invite-cannot-answer"));
            programs_page(&state, &visitor, error, StatusCode::CONFLICT).await
        }
        Err(EnrollError::NotFound(_) | EnrollError::UnknownPartner) => Err(PortalError::NotFound),
        Err(EnrollError::Db(e)) => Err(e.into()),
    }
}

pub struct LinkRow {
    pub id: String,
    pub url: String,
    pub program: String,
    pub destination: String,
    pub sub_ids: String,
    pub created: String,
    pub disabled: bool,
}

pub struct AgreementChoice {
    pub id: String,
    pub label: String,
    /// The one a refused form had chosen.
    pub selected: bool,
}

/// The partner's agreements in the programs it is active in, as a form
/// offers them ("program · terms vN"), `chosen` marked.
pub(super) async fn agreement_choices(
    state: &AppState,
    partner: PartnerId,
    ms: &[enrollments::Enrollment],
    tr: &super::i18n::Tr,
    chosen: Option<&str>,
) -> Result<Vec<AgreementChoice>, PortalError> {
    let names = program_names(ms);
    let active: Vec<ProgramId> = ms
        .iter()
        .filter(|e| e.status == EnrollmentStatus::Active)
        .map(|e| e.program_id)
        .collect();
    Ok(agreements::list(&state.db, None, Some(partner), 0, 200)
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
        .collect())
}

#[derive(Template)]
#[template(path = "portal/partner_links.html")]
struct LinksPage {
    l: Layout,
    links: Vec<LinkRow>,
    agreements: Vec<AgreementChoice>,
    errors: Vec<String>,
    destination: String,
    sub1: String,
    sub2: String,
    sub3: String,
}

fn sub_ids_text(v: &serde_json::Value) -> String {
    crate::domain::SubIds::from_json(v)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn links_page(
    state: &AppState,
    visitor: &Visitor,
    form: Option<&LinkForm>,
    errors: Vec<String>,
    status: StatusCode,
) -> Result<HttpResponse, PortalError> {
    let partner = visitor.partner()?;
    let tr = visitor.tr();
    let ms = memberships(state, partner).await?;
    let names = program_names(&ms);
    let base = state.settings.public_base();
    let mut rows = links::list(&state.db, None, None, Some(partner), 0, 500).await?;
    rows.reverse();
    let links = rows
        .into_iter()
        .map(|l| LinkRow {
            id: l.id.to_string(),
            url: format!("{base}/l/{}", l.code),
            program: names.get(&l.program_id).cloned().unwrap_or_default(),
            destination: l.destination_url.clone().unwrap_or_default(),
            sub_ids: sub_ids_text(&l.sub_ids),
            created: tr.date(l.created_at),
            disabled: l.disabled_at.is_some(),
        })
        .collect();
    let chosen = form.map(|f| f.agreement_id.as_str());
    let agreements = agreement_choices(state, partner, &ms, &tr, chosen).await?;
    let value =
        |f: fn(&LinkForm) -> &Option<String>| form.and_then(|x| f(x).clone()).unwrap_or_default();
    let page = LinksPage {
        l: Layout::new(visitor, "links-title"),
        links,
        agreements,
        errors,
        destination: value(|f| &f.destination_url),
        sub1: value(|f| &f.sub1),
        sub2: value(|f| &f.sub2),
        sub3: value(|f| &f.sub3),
    };
    Ok(visitor.html(status, render(&page)?))
}

/// GET /portal/partner/links
pub async fn links(
    state: web::Data<AppState>,
    visitor: Visitor,
) -> Result<HttpResponse, PortalError> {
    links_page(&state, &visitor, None, Vec::new(), StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    csrf: String,
    agreement_id: String,
    destination_url: Option<String>,
    sub1: Option<String>,
    sub2: Option<String>,
    sub3: Option<String>,
}

/// POST /portal/partner/links: a new link, issued by the same core
/// function as `POST /v1/links`.
pub async fn create_link(
    state: web::Data<AppState>,
    visitor: Visitor,
    Form(form): Form<LinkForm>,
) -> Result<HttpResponse, PortalError> {
    visitor.check_csrf(&form.csrf)?;
    let partner = visitor.partner()?;
    let tr = visitor.tr();
    let agreement: AgreementId = form
        .agreement_id
        .parse()
        .map_err(|_| PortalError::NotFound)?;
    let mut sub_ids = BTreeMap::new();
    for (key, value) in [
        ("sub1", &form.sub1),
        ("sub2", &form.sub2),
        ("sub3", &form.sub3),
    ] {
        if let Some(v) = field(value) {
            sub_ids.insert(key.to_owned(), v.to_owned());
        }
    }
    let result = links::issue(
        &state.db,
        &state.settings.link_keys,
        Issuer::Partner(partner),
        agreement,
        field(&form.destination_url),
        &sub_ids,
    )
    .await;
    match result {
        Ok(link) => Ok(see_other(&format!(
            "/portal/partner/links/{}?notice=link-created",
            link.id
        ))),
        Err(IssueError::NotFound) => Err(PortalError::NotFound),
        Err(IssueError::Invalid(fields)) => {
            let errors = fields
                .into_iter()
                .map(|(f, m)| format!("{}: {m}", tr.t(&format!("field-{}", f.replace('_', "-")))))
                .collect();
            links_page(
                &state,
                &visitor,
                Some(&form),
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(IssueError::Other(e)) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "portal/partner_link.html")]
struct LinkPage {
    l: Layout,
    url: String,
    program: String,
    destination: String,
    sub_ids: String,
    qr: String,
}

/// The link's QR code as SVG, dark modules on white, sized by the viewer.
fn qr_svg(url: &str) -> Result<String, PortalError> {
    let code = qrcode::QrCode::with_error_correction_level(url.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| PortalError::Internal(anyhow::anyhow!("QR code: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

/// GET /portal/partner/links/{id}: one link, to copy or to scan.
pub async fn link(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<String>,
) -> Result<HttpResponse, PortalError> {
    let partner = visitor.partner()?;
    let id: LinkId = path.parse().map_err(|_| PortalError::NotFound)?;
    let link = links::get(&state.db, id)
        .await?
        .ok_or(PortalError::NotFound)?;
    if !agreements::has_partner(&state.db, link.agreement_id, partner).await? {
        return Err(PortalError::NotFound);
    }
    let names = program_names(&memberships(&state, partner).await?);
    let url = format!("{}/l/{}", state.settings.public_base(), link.code);
    let page = LinkPage {
        l: Layout::new(&visitor, "link-title"),
        qr: qr_svg(&url)?,
        url,
        program: names.get(&link.program_id).cloned().unwrap_or_default(),
        destination: link.destination_url.clone().unwrap_or_default(),
        sub_ids: sub_ids_text(&link.sub_ids),
    };
    Ok(visitor.html(StatusCode::OK, render(&page)?))
}

pub struct CommissionRow {
    pub id: String,
    pub date: String,
    pub program: String,
    pub order: String,
    pub amount: String,
    pub status: String,
    pub status_code: &'static str,
    pub rule: String,
    pub share: Option<String>,
    pub version: String,
    pub reasons: Vec<String>,
    /// The thread of the claim open about it, if one is.
    pub open_claim: Option<String>,
    /// Past the program's claim window: why it cannot be disputed.
    pub too_late: Option<String>,
}

pub struct StatusChoice {
    pub value: &'static str,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "portal/partner_commissions.html")]
struct CommissionsPage {
    l: Layout,
    statuses: Vec<StatusChoice>,
    rows: Vec<CommissionRow>,
}

#[derive(Deserialize)]
pub struct StatusQuery {
    status: Option<String>,
}

/// GET /portal/partner/commissions?status=: each with the rule, rate and
/// agreement version behind it, and every hold, rejection and refund in words.
pub async fn commissions(
    state: web::Data<AppState>,
    visitor: Visitor,
    query: web::Query<StatusQuery>,
) -> Result<HttpResponse, PortalError> {
    let partner = visitor.partner()?;
    let tr = visitor.tr();
    let status = field(&query.status).and_then(|s| CommissionStatus::parse(s).ok());
    let filter = Filter {
        status,
        ..Filter::default()
    };
    // The latest ones; the statement (and its CSV) has every one.
    let (list, ms) = tokio::try_join!(
        queries::latest_commissions(&state.db, partner, &filter, 200),
        enrollments::list(&state.db, Side::Partner(partner), None, 0, 500),
    )?;
    let ids: Vec<_> = list.iter().map(|c| c.id).collect();
    let (explained, disputes, late) = tokio::try_join!(
        queries::explanations(&state.db, partner, &ids),
        open_disputes(&state.db, partner, 500),
        crate::claims::past_window(&state.db, partner, &ids),
    )?;
    let names = program_names(&ms);
    let rows = list
        .iter()
        .map(|c| {
            let mut reasons: Vec<String> = Vec::new();
            if c.review && c.status == CommissionStatus::Pending {
                for signal in &c.fraud_reasons {
                    reasons.push(tr.ta(
                        "reason-held",
                        &[("why", word(&tr, "fraud", signal.as_str()))],
                    ));
                }
                if c.fraud_reasons.is_empty() {
                    reasons.push(tr.t("reason-held-by-program"));
                }
            }
            for e in explained.iter().filter(|e| e.commission_id == c.id) {
                let text = e
                    .reason
                    .as_deref()
                    .map(|r| ledger_reason(&tr, r, c.currency))
                    .unwrap_or_default();
                let key = match e.kind {
                    crate::domain::LedgerKind::Rejected => "reason-rejected",
                    crate::domain::LedgerKind::Approved => "reason-approved",
                    crate::domain::LedgerKind::Carried => "reason-carried",
                    _ => "reason-refunded",
                };
                reasons.push(tr.ta(
                    key,
                    &[
                        ("why", text),
                        ("amount", tr.money(e.amount_minor.abs(), c.currency)),
                        ("date", tr.date(e.created_at)),
                    ],
                ));
            }
            if c.status == CommissionStatus::Pending && !c.review {
                reasons.push(tr.ta("reason-hold-until", &[("date", tr.date(c.approve_after))]));
            }
            CommissionRow {
                id: c.id.to_string(),
                date: tr.date(c.created_at),
                program: names.get(&c.program_id).cloned().unwrap_or_default(),
                order: c.order_id.clone(),
                amount: tr.money(c.amount_minor, c.currency),
                status: word(&tr, "commission-status", c.status.as_str()),
                status_code: c.status.as_str(),
                rule: rule(&tr, &c.rule, c.base_minor, c.currency),
                share: (c.share_bps != 10_000).then(|| {
                    tr.ta(
                        "commission-share",
                        &[
                            ("share", tr.bps(i64::from(c.share_bps))),
                            ("total", tr.money(c.total_minor, c.currency)),
                        ],
                    )
                }),
                version: tr.ta(
                    "agreement-version",
                    &[("version", c.agreement_version.to_string())],
                ),
                reasons,
                open_claim: disputes.get(&c.id).cloned(),
                too_late: late.get(&c.id).map(|days| too_late(&tr, *days)),
            }
        })
        .collect();
    let statuses = CommissionStatus::ALL
        .iter()
        .map(|s| StatusChoice {
            value: s.as_str(),
            label: word(&tr, "commission-status", s.as_str()),
            selected: Some(*s) == status,
        })
        .collect();
    let page = CommissionsPage {
        l: Layout::new(&visitor, "commissions-title"),
        statuses,
        rows,
    };
    Ok(visitor.html(StatusCode::OK, render(&page)?))
}

pub struct StatementRow {
    pub date: String,
    pub kind: String,
    pub program: String,
    pub order: String,
    pub bucket: String,
    pub amount: String,
    pub negative: bool,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "portal/partner_statement.html")]
struct StatementPage {
    l: Layout,
    from: String,
    to: String,
    opening: Vec<BalanceRow>,
    closing: Vec<BalanceRow>,
    rows: Vec<StatementRow>,
    /// When the period has more lines than the page shows, says so.
    shown: Option<String>,
    csv: String,
    too_long: bool,
    /// Each program's signed statement, to verify offline.
    signed: Vec<SignedRow>,
}

/// Lines a statement page shows (the latest); the CSV has every one.
const MAX_STATEMENT_LINES: usize = 500;

#[derive(Deserialize)]
pub struct PeriodQuery {
    from: Option<String>,
    to: Option<String>,
}

/// The period asked for, as days in the visitor's time zone (default: the
/// last 30 days), and its bounds as instants.
fn period(
    visitor: &Visitor,
    q: &PeriodQuery,
) -> (
    NaiveDate,
    NaiveDate,
    chrono::DateTime<Utc>,
    chrono::DateTime<Utc>,
) {
    let today = Utc::now().with_timezone(&visitor.tz).date_naive();
    let parse =
        |v: &Option<String>| field(v).and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok());
    let to = parse(&q.to).unwrap_or(today);
    let from = parse(&q.from)
        .filter(|f| *f <= to)
        .unwrap_or(to - Duration::days(29));
    let start = |d: NaiveDate| {
        visitor
            .tz
            .from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default()))
    };
    (from, to, start(from), start(to + Duration::days(1)))
}

/// GET /portal/partner/statement?from=&to=
pub async fn statement(
    state: web::Data<AppState>,
    visitor: Visitor,
    query: web::Query<PeriodQuery>,
) -> Result<HttpResponse, PortalError> {
    let partner = visitor.partner()?;
    let tr = visitor.tr();
    let (from, to, start, end) = period(&visitor, &query);
    let (statement, ms) = tokio::try_join!(
        queries::statement(&state.db, partner, start, end),
        enrollments::list(&state.db, Side::Partner(partner), None, 0, 500),
    )?;
    let names = program_names(&ms);
    let signed = signed_statements::rows(&state, &ms).await?;
    // Words that repeat on every line, looked up once.
    let kinds: HashMap<LedgerKind, String> = LedgerKind::ALL
        .iter()
        .map(|k| (*k, word(&tr, "ledger-kind", k.as_str())))
        .collect();
    let buckets: HashMap<Bucket, String> = Bucket::ALL
        .iter()
        .map(|b| (*b, word(&tr, "bucket", b.as_str())))
        .collect();
    let balances = |list: &[queries::CurrencyBalance]| {
        list.iter()
            .map(|b| BalanceRow {
                pending: tr.money(b.pending_minor, b.currency),
                approved: tr.money(b.approved_minor, b.currency),
                paid: tr.money(b.paid_minor, b.currency),
            })
            .collect::<Vec<_>>()
    };
    let total = statement.as_ref().map_or(0, |s| s.entries.len());
    let (opening, closing, rows, too_long) = match &statement {
        None => (Vec::new(), Vec::new(), Vec::new(), true),
        Some(s) => (
            balances(&s.opening),
            balances(&s.closing),
            s.entries[total.saturating_sub(MAX_STATEMENT_LINES)..]
                .iter()
                .map(|e| StatementRow {
                    date: tr.datetime(e.created_at),
                    kind: kinds.get(&e.kind).cloned().unwrap_or_default(),
                    program: names.get(&e.program_id).cloned().unwrap_or_default(),
                    order: e.order_id.clone().unwrap_or_default(),
                    bucket: buckets.get(&e.bucket).cloned().unwrap_or_default(),
                    amount: tr.money(e.amount_minor, e.currency),
                    negative: e.amount_minor < 0,
                    detail: match (&e.rule, e.base_minor) {
                        (Some(r), Some(base)) => {
                            let mut d = rule(&tr, r, base, e.currency);
                            if let Some(v) = e.agreement_version {
                                d.push_str(&format!(
                                    " · {}",
                                    tr.ta("agreement-version", &[("version", v.to_string())])
                                ));
                            }
                            if let Some(reason) = &e.reason {
                                d.push_str(&format!(" · {reason}"));
                            }
                            d
                        }
                        _ => e.reason.clone().unwrap_or_default(),
                    },
                })
                .collect(),
            false,
        ),
    };
    let page = StatementPage {
        l: Layout::new(&visitor, "statement-title"),
        csv: format!("/portal/partner/statement.csv?from={from}&to={to}"),
        from: from.to_string(),
        to: to.to_string(),
        opening,
        closing,
        shown: (total > MAX_STATEMENT_LINES).then(|| {
            tr.ta(
                "statement-shown",
                &[
                    ("shown", tr.number(MAX_STATEMENT_LINES as i64)),
                    ("total", tr.number(total as i64)),
                ],
            )
        }),
        rows,
        too_long,
        signed,
    };
    Ok(visitor.html(StatusCode::OK, render(&page)?))
}

/// GET /portal/partner/statement.csv?from=&to=
pub async fn statement_csv(
    state: web::Data<AppState>,
    visitor: Visitor,
    query: web::Query<PeriodQuery>,
) -> Result<HttpResponse, PortalError> {
    let partner = visitor.partner()?;
    let (from, to, start, end) = period(&visitor, &query);
    let statement = queries::statement(&state.db, partner, start, end)
        .await?
        .ok_or_else(|| PortalError::BadRequest("period too long".into()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"statement-{from}-{to}.csv\""),
        ))
        .body(queries::statement_csv(&statement)))
}

pub struct PayoutRow {
    pub id: String,
    pub date: String,
    pub program: String,
    pub amount: String,
    pub count: String,
}

#[derive(Template)]
#[template(path = "portal/partner_payouts.html")]
struct PayoutsPage {
    l: Layout,
    rows: Vec<PayoutRow>,
}

/// GET /portal/partner/payouts: what the partner was paid.
pub async fn payouts(
    state: web::Data<AppState>,
    visitor: Visitor,
) -> Result<HttpResponse, PortalError> {
    let partner = visitor.partner()?;
    let tr = visitor.tr();
    let rows = payouts::received(&state.db, partner, 500)
        .await?
        .into_iter()
        .map(|p| PayoutRow {
            id: p.payout_id.to_string(),
            date: tr.date(p.created_at),
            program: p.program_name,
            amount: tr.money(p.amount_minor, p.currency),
            count: tr.number(i64::from(p.commission_count)),
        })
        .collect();
    let page = PayoutsPage {
        l: Layout::new(&visitor, "payouts-title"),
        rows,
    };
    Ok(visitor.html(StatusCode::OK, render(&page)?))
}
