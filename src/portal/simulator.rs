//! "What would I earn": a partner prices an order in one of its programs
//! through the rule simulator (`attribution::simulate`, the API's
//! `POST /v1/programs/{id}/simulate`), booking nothing, and reads the answer
//! and the reasons behind it in words. A GET form: it works without
//! JavaScript, and an answer is a link that can be kept or shared.

use super::i18n::Tr;
use super::layout::Layout;
use super::merchant::parse_decimal;
use super::web::{PortalError, Visitor, field};
use super::words::{rule, word};
use crate::attribution::simulate::{self, Quote, QuotedCommission, Request, SimulateError};
use crate::conversions::MAX_AMOUNT_MINOR;
use crate::domain::{
    AppliedRule, Category, CommissionKind, Currency, EarningEvent, EnrollmentStatus, Item,
    PartnerId, ProgramId, Rule, RuleSource, TierBasis,
};
use crate::enrollments::{self, Side};
use crate::http::state::AppState;
use crate::programs;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;

/// Lines of categories the form offers.
const LINES: usize = 3;

/// The form, as the browser sends it (every field text, maybe empty).
#[derive(Deserialize, Default)]
pub struct SimulateQuery {
    program: Option<String>,
    event: Option<String>,
    amount: Option<String>,
    cat1: Option<String>,
    amt1: Option<String>,
    cat2: Option<String>,
    amt2: Option<String>,
    cat3: Option<String>,
    amt3: Option<String>,
    renewal: Option<String>,
}

impl SimulateQuery {
    fn lines(&self) -> [(&Option<String>, &Option<String>); LINES] {
        [
            (&self.cat1, &self.amt1),
            (&self.cat2, &self.amt2),
            (&self.cat3, &self.amt3),
        ]
    }

    /// Whether anything but the program was filled in: an order to price.
    fn asks(&self) -> bool {
        field(&self.amount).is_some()
            || self
                .lines()
                .iter()
                .any(|(c, a)| field(c).is_some() || field(a).is_some())
    }
}

pub struct ProgramChoice {
    pub id: String,
    pub name: String,
    pub currency: &'static str,
    pub selected: bool,
}

pub struct LineField {
    pub n: usize,
    pub category: String,
    pub amount: String,
}

/// One commission the order would book, in words.
pub struct CommissionView {
    pub kind: &'static str,
    pub amount: String,
    pub what: String,
    pub why: Vec<String>,
}

/// What one agreement of the partner would earn.
pub struct QuoteView {
    pub terms: String,
    pub reason: Option<String>,
    pub month: Option<String>,
    pub commissions: Vec<CommissionView>,
}

pub struct Answer {
    pub total: String,
    pub order: String,
    pub quotes: Vec<QuoteView>,
    /// No agreement of the partner's in the program yet.
    pub no_agreement: bool,
}

#[derive(Template)]
#[template(path = "portal/partner_simulate.html")]
struct SimulatePage {
    l: Layout,
    programs: Vec<ProgramChoice>,
    currency: &'static str,
    sale: bool,
    amount: String,
    lines: Vec<LineField>,
    categories: Vec<String>,
    renewal: bool,
    errors: Vec<String>,
    answer: Option<Answer>,
}

/// An amount written by a person in `tr`'s language ("1.250.000" or
/// "12,50" in Indonesian, "1,250,000" or "12.50" in English), in minor
/// units of a currency with `exponent` decimals.
pub fn parse_amount(tr: &Tr, s: &str, exponent: u32) -> Option<i64> {
    let s: String = s
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}'))
        .collect();
    let (group, decimal) = match tr.locale {
        super::i18n::Locale::En => (',', '.'),
        super::i18n::Locale::Id => ('.', ','),
    };
    let groups = s.matches(group).count();
    let decimals = s.matches(decimal).count();
    // The language's grouping mark, where it can only be grouping: used
    // with the decimal mark, several times, or before exactly 3 digits.
    let grouping = groups > 0
        && (decimals > 0
            || groups > 1
            || s.rsplit_once(group)
                .is_some_and(|(_, tail)| tail.len() == 3));
    let plain = if grouping { s.replace(group, "") } else { s };
    if plain.matches(['.', ',']).count() > 1 {
        return None;
    }
    parse_decimal(&plain, exponent)
}

/// GET /portal/partner/simulate?program=&event=&amount=&cat1=&amt1=…&renewal=
pub async fn page(
    state: web::Data<AppState>,
    visitor: Visitor,
    query: web::Query<SimulateQuery>,
) -> Result<HttpResponse, PortalError> {
    let partner = visitor.partner()?;
    let tr = visitor.tr();
    let q = query.into_inner();
    // The programs the partner is an active member of, with their terms.
    let mut active: Vec<programs::Program> = Vec::new();
    for e in enrollments::list(&state.db, Side::Partner(partner), None, 0, 500).await? {
        if e.status == EnrollmentStatus::Active
            && !active.iter().any(|p| p.id == e.program_id)
            && let Some(p) = programs::get(&state.db, e.program_id).await?
        {
            active.push(p);
        }
    }
    // A program the partner is not an active member of: no such page.
    let chosen = match field(&q.program) {
        Some(id) => {
            let id: ProgramId = id.parse().map_err(|_| PortalError::NotFound)?;
            Some(
                active
                    .iter()
                    .position(|p| p.id == id)
                    .ok_or(PortalError::NotFound)?,
            )
        }
        None => (!active.is_empty()).then_some(0),
    };
    let program = chosen.map(|i| &active[i]);
    let event = match field(&q.event) {
        Some("lead") => EarningEvent::Lead,
        _ => EarningEvent::Sale,
    };
    let renewal = field(&q.renewal).is_some();
    let mut errors = Vec::new();
    let mut answer = None;
    if let Some(p) = program.filter(|_| q.asks()) {
        match read_order(&tr, &q, p.currency, event) {
            Err(e) => errors = e,
            Ok((amount_minor, items)) => {
                let now = Utc::now();
                let request = Request {
                    program: p.id,
                    event,
                    amount_minor,
                    currency: p.currency,
                    items,
                    subscription_id: None,
                    occurred_at: now,
                    agreement: None,
                    partner: Some(partner),
                    month_to_date: None,
                    hypothetical_renewal: renewal && event == EarningEvent::Sale,
                };
                match simulate::simulate(&state.db, &request, now).await {
                    Ok(sim) => {
                        answer = Some(explain(&tr, partner, &request, &sim, &p.name));
                    }
                    Err(SimulateError::NoProgram) => return Err(PortalError::NotFound),
                    Err(SimulateError::Subscription(reason)) => {
                        errors.push(word(&tr, "conversion-reason", reason.as_str()));
                    }
                    Err(SimulateError::Other(e)) => return Err(e.into()),
                }
            }
        }
    }
    let categories = program
        .and_then(|p| p.rules().ok())
        .and_then(|r| r.rule(EarningEvent::Sale).cloned())
        .map(|r| r.categories.keys().map(|c| c.to_string()).collect())
        .unwrap_or_default();
    let lines = q
        .lines()
        .iter()
        .enumerate()
        .map(|(i, &(c, a))| LineField {
            n: i + 1,
            category: c.clone().unwrap_or_default(),
            amount: a.clone().unwrap_or_default(),
        })
        .collect();
    let programs = active
        .iter()
        .enumerate()
        .map(|(i, p)| ProgramChoice {
            id: p.id.to_string(),
            name: p.name.clone(),
            currency: p.currency.code(),
            selected: Some(i) == chosen,
        })
        .collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = SimulatePage {
        l: Layout::new(&visitor, "simulate-title"),
        programs,
        currency: program.map_or("", |p| p.currency.code()),
        sale: event == EarningEvent::Sale,
        amount: q.amount.clone().unwrap_or_default(),
        lines,
        categories,
        renewal,
        errors,
        answer,
    };
    let body = page
        .render()
        .map_err(|e| PortalError::Internal(anyhow::anyhow!("template failed: {e}")))?;
    Ok(visitor.html(status, body))
}

/// The order of the form: its amount, and its lines when any were given
/// (with one more, without a category, for what they leave of the amount).
/// Or what is wrong with it, in words.
fn read_order(
    tr: &Tr,
    q: &SimulateQuery,
    currency: Currency,
    event: EarningEvent,
) -> Result<(i64, Option<Vec<Item>>), Vec<String>> {
    let e = currency.exponent();
    let mut errors = Vec::new();
    let money = |s: &str| parse_amount(tr, s, e).filter(|a| (0..=MAX_AMOUNT_MINOR).contains(a));
    let amount = match field(&q.amount) {
        None => None,
        Some(s) => {
            let a = money(s);
            if a.is_none() {
                errors.push(tr.t("simulate-bad-amount"));
            }
            a
        }
    };
    let mut items = Vec::new();
    for (i, (c, a)) in q.lines().iter().enumerate() {
        let n = i + 1;
        match (field(c), field(a)) {
            (None, None) => {}
            (_, None) => errors.push(tr.ta("simulate-line-needs-amount", &[("n", n.to_string())])),
            (c, Some(a)) => {
                let category = match c.map(Category::parse) {
                    None => None,
                    Some(Ok(c)) => Some(c),
                    Some(Err(_)) => {
                        errors.push(tr.ta("simulate-bad-category", &[("n", n.to_string())]));
                        None
                    }
                };
                match money(a) {
                    Some(amount_minor) => items.push(Item {
                        sku: format!("line-{n}"),
                        category,
                        amount_minor,
                        quantity: 1,
                    }),
                    None => errors.push(tr.ta("simulate-bad-line-amount", &[("n", n.to_string())])),
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if !items.is_empty() && event == EarningEvent::Lead {
        return Err(vec![tr.t("simulate-lead-no-lines")]);
    }
    let lines_total: i64 = items.iter().map(|i| i.amount_minor).sum();
    let amount = match amount {
        Some(a) => a,
        None if items.is_empty() => return Err(vec![tr.t("simulate-bad-amount")]),
        None => lines_total,
    };
    if items.is_empty() {
        return Ok((amount, None));
    }
    if lines_total > amount {
        return Err(vec![tr.ta(
            "simulate-lines-exceed",
            &[
                ("lines", tr.money(lines_total, currency)),
                ("amount", tr.money(amount, currency)),
            ],
        )]);
    }
    if lines_total < amount {
        items.push(Item {
            sku: "rest".into(),
            category: None,
            amount_minor: amount - lines_total,
            quantity: 1,
        });
    }
    Ok((amount, Some(items)))
}

/// The simulator's answer, for this partner, in words.
fn explain(
    tr: &Tr,
    partner: PartnerId,
    req: &Request,
    sim: &simulate::Simulation,
    program: &str,
) -> Answer {
    let c = sim.currency;
    let quotes: Vec<QuoteView> = sim
        .quotes
        .iter()
        .map(|q| quote_view(tr, partner, req, sim.program_version, q))
        .collect();
    let total: i64 = sim
        .quotes
        .iter()
        .flat_map(|q| &q.commissions)
        .filter(|x| x.partner_id == partner)
        .map(|x| x.amount_minor)
        .sum();
    let event = tr.t(&format!("event-{}", req.event));
    Answer {
        total: tr.money(total, c),
        order: tr.ta(
            if req.hypothetical_renewal {
                "simulate-order-renewal"
            } else {
                "simulate-order"
            },
            &[
                ("event", event),
                ("amount", tr.money(req.amount_minor, c)),
                ("program", program.to_owned()),
            ],
        ),
        no_agreement: sim.quotes.is_empty(),
        quotes,
    }
}

fn quote_view(
    tr: &Tr,
    partner: PartnerId,
    req: &Request,
    program_version: i32,
    q: &Quote,
) -> QuoteView {
    let c = req.currency;
    let mine: Vec<&QuotedCommission> = q
        .commissions
        .iter()
        .filter(|x| x.partner_id == partner)
        .collect();
    let source = match q.rule_source {
        Some(RuleSource::Agreement) => Some(tr.t("simulate-source-agreement")),
        Some(RuleSource::Program) => Some(tr.t("simulate-source-program")),
        None => None,
    };
    let mut terms = tr.ta(
        "simulate-versions",
        &[
            ("program", program_version.to_string()),
            (
                "agreement",
                q.agreement_version
                    .map_or_else(|| "–".to_owned(), |v| v.to_string()),
            ),
        ],
    );
    if let Some(s) = source {
        terms = format!("{s} · {terms}");
    }
    let reason = match (&q.reason, mine.is_empty()) {
        (Some(r), _) => Some(tr.ta(
            "simulate-earns-nothing",
            &[("why", word(tr, "conversion-reason", r.as_str()))],
        )),
        (None, true) => Some(tr.t("simulate-earns-nothing-here")),
        (None, false) => None,
    };
    let month = q.month_to_date.map(|m| {
        tr.ta(
            "simulate-month-so-far",
            &[
                ("sales", tr.number(m.sales)),
                ("revenue", tr.money(m.revenue_minor, c)),
            ],
        )
    });
    QuoteView {
        terms,
        reason,
        month,
        commissions: mine.iter().map(|x| commission_view(tr, req, x)).collect(),
    }
}

/// A rate in words: "10%" or "€2.00 each".
fn rate(tr: &Tr, r: &Rule, c: Currency) -> String {
    match r {
        Rule::PercentBps(bps) => tr.bps(i64::from(bps.get())),
        Rule::FlatMinor(amount) => tr.ta("simulate-rate-flat", &[("amount", tr.money(*amount, c))]),
    }
}

/// A month's count or revenue in words: "20 sales" or "€4,000.00 of sales".
fn figure(tr: &Tr, by: TierBasis, n: i64, c: Currency) -> String {
    match by {
        TierBasis::Count => tr.ta("simulate-sales", &[("count", tr.number(n))]),
        TierBasis::Revenue => tr.ta("simulate-revenue", &[("amount", tr.money(n, c))]),
    }
}

fn commission_view(tr: &Tr, req: &Request, x: &QuotedCommission) -> CommissionView {
    let c = req.currency;
    let a: &AppliedRule = &x.rule;
    let mut why = Vec::new();
    let what = match x.kind {
        CommissionKind::Bonus => tr.t("simulate-kind-bonus"),
        CommissionKind::TierAdjustment => tr.t("simulate-kind-rerate"),
        CommissionKind::Conversion => tr.t("simulate-kind-order"),
    };
    if x.kind == CommissionKind::Conversion {
        if a.lines.is_empty() {
            why.push(rule(tr, a, req.amount_minor, c));
        }
        for line in a.lines.iter() {
            let category = match &line.category {
                Some(cat) => tr.ta("simulate-category", &[("category", cat.to_string())]),
                None => tr.t("simulate-category-default"),
            };
            why.push(tr.ta(
                "simulate-line",
                &[
                    ("category", category),
                    ("rate", rate(tr, &line.rate, c)),
                    ("amount", tr.money(line.amount_minor, c)),
                    ("commission", tr.money(line.commission_minor, c)),
                ],
            ));
        }
        if let Some(t) = &a.tier {
            let month = figure(
                tr,
                t.by,
                match t.by {
                    TierBasis::Count => t.month_sales,
                    TierBasis::Revenue => t.month_revenue_minor,
                },
                c,
            );
            why.push(match t.from {
                None => tr.ta("simulate-tier-base", &[("month", month)]),
                Some(from) => tr.ta(
                    "simulate-tier",
                    &[
                        ("step", t.step.to_string()),
                        ("from", figure(tr, t.by, from, c)),
                        ("month", month),
                    ],
                ),
            });
        }
        if let Some(r) = &a.renewal {
            why.push(tr.ta("simulate-renewal-paid", &[("months", r.months.to_string())]));
        }
    }
    if let Some(b) = &a.bonus {
        why.push(tr.ta(
            "simulate-bonus",
            &[
                ("at", figure(tr, b.by, b.at, c)),
                ("month", tr.day(b.month)),
            ],
        ));
    }
    if let Some(r) = &a.rerated {
        why.push(tr.ta(
            "simulate-rerated",
            &[
                ("sales", tr.number(r.sales)),
                ("step", r.step.to_string()),
                ("booked", tr.money(r.booked_minor, c)),
                ("rerated", tr.money(r.rerated_minor, c)),
            ],
        ));
    }
    if x.share_bps != 10_000 {
        why.push(tr.ta(
            "commission-share",
            &[
                ("share", tr.bps(i64::from(x.share_bps))),
                ("total", tr.money(x.total_minor, c)),
            ],
        ));
    }
    why.push(tr.ta("reason-hold-until", &[("date", tr.date(x.approve_after))]));
    CommissionView {
        kind: x.kind.as_str(),
        amount: tr.money(x.amount_minor, c),
        what,
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portal::i18n::Locale;
    use chrono_tz::Tz;

    #[test]
    fn amounts_are_read_the_way_each_language_writes_them() {
        let en = Tr::new(Locale::En, Tz::UTC);
        let id = Tr::new(Locale::Id, Tz::UTC);
        assert_eq!(parse_amount(&en, "125", 2), Some(12_500));
        assert_eq!(parse_amount(&en, "125.5", 2), Some(12_550));
        assert_eq!(parse_amount(&en, "1,250.50", 2), Some(125_050));
        assert_eq!(parse_amount(&en, "1,250", 2), Some(125_000));
        assert_eq!(parse_amount(&id, "12.500", 2), Some(1_250_000));
        assert_eq!(parse_amount(&id, "1.250.000", 2), Some(125_000_000));
        assert_eq!(parse_amount(&id, "12,5", 2), Some(1_250));
        assert_eq!(parse_amount(&id, "Rp 12.500", 2), None);
        assert_eq!(parse_amount(&id, "1.250.000,50", 2), Some(125_000_050));
        assert_eq!(parse_amount(&en, "1.2.3", 2), None);
        assert_eq!(parse_amount(&en, "12.345", 2), None);
        assert_eq!(parse_amount(&en, "-5", 2), None);
        assert_eq!(parse_amount(&en, "1500", 0), Some(1500));
    }
}
