//! A month of randomized sales across tiers, categories and renewals,
//! posted through the webhook and booked by the worker against real
//! Postgres, beside an independent calculation of what the rules, as the
//! README documents them, give. The calculation below shares no code with
//! mitra's pricing.
//!
//! The seed is printed; `MITRA_TEST_SEED=<n>` replays a run.

use crate::helpers::*;
use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

#[derive(Clone, Copy)]
enum Rate {
    Pct(i64),
    Flat(i64),
}

struct Model {
    base: Rate,
    by_count: bool,
    rerate: bool,
    steps: Vec<(i64, Rate)>,
    categories: Vec<(&'static str, Rate)>,
    months: u32,
    /// (by count, at, flat).
    bonuses: Vec<(bool, i64, i64)>,
}

/// The program's rule (agreement A uses it).
fn program_rule() -> (Value, Model) {
    let json = json!({"sale": {
        "percent_bps": 1000,
        "tiers": {"by": "count", "rerate": true,
                  "steps": [{"from": 6, "percent_bps": 1200}, {"from": 12, "percent_bps": 1500}]},
        "categories": {"books": {"percent_bps": 500}, "gifts": {"flat_minor": 150}},
        "recurring": {"months": 2},
        "bonuses": [{"by": "count", "at": 10, "flat_minor": 2500}]
    }});
    let model = Model {
        base: Rate::Pct(1000),
        by_count: true,
        rerate: true,
        steps: vec![(6, Rate::Pct(1200)), (12, Rate::Pct(1500))],
        categories: vec![("books", Rate::Pct(500)), ("gifts", Rate::Flat(150))],
        months: 2,
        bonuses: vec![(true, 10, 2500)],
    };
    (json, model)
}

/// Agreement B's own rule, which replaces the program's.
fn agreement_rule() -> (Value, Model) {
    let json = json!({"sale": {
        "percent_bps": 800,
        "tiers": {"by": "revenue", "steps": [{"from": 300_000, "percent_bps": 1100}]},
        "categories": {"books": {"percent_bps": 300}},
        "recurring": {"months": 1},
        "bonuses": [{"by": "revenue", "at": 500_000, "flat_minor": 10_000}]
    }});
    let model = Model {
        base: Rate::Pct(800),
        by_count: false,
        rerate: false,
        steps: vec![(300_000, Rate::Pct(1100))],
        categories: vec![("books", Rate::Pct(300))],
        months: 1,
        bonuses: vec![(false, 500_000, 10_000)],
    };
    (json, model)
}

/// Half away from zero, for the non-negative amounts here.
fn pct(amount: i64, bps: i64) -> i64 {
    ((i128::from(amount) * i128::from(bps) + 5_000) / 10_000) as i64
}

/// Largest remainder; ties to the earlier partner.
fn split(total: i64, shares: &[i64]) -> Vec<i64> {
    let mut parts: Vec<i64> = shares.iter().map(|s| total * s / 10_000).collect();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by_key(|i| (std::cmp::Reverse(total * shares[*i] % 10_000), *i));
    let mut left = total - parts.iter().sum::<i64>();
    for i in order {
        if left == 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    parts
}

#[derive(Clone)]
struct Sale {
    order: String,
    agreement: usize,
    amount: i64,
    /// (sku, category, amount, quantity).
    items: Vec<(String, Option<&'static str>, i64, i64)>,
    at: DateTime<Utc>,
    subscription: Option<String>,
    /// A renewal: its first payment.
    first: Option<DateTime<Utc>>,
}

impl Sale {
    fn body(&self, coupons: &[&str]) -> Value {
        let mut body = json!({"order_id": self.order, "event": "sale", "amount_minor": self.amount,
                              "currency": "EUR", "occurred_at": self.at});
        if self.first.is_none() {
            body["coupon"] = json!(coupons[self.agreement]);
        }
        if let Some(sub) = &self.subscription {
            body["subscription_id"] = json!(sub);
        }
        if !self.items.is_empty() {
            body["items"] = self
                .items
                .iter()
                .map(|(sku, category, amount, quantity)| {
                    let mut line =
                        json!({"sku": sku, "amount_minor": amount, "quantity": quantity});
                    if let Some(c) = category {
                        line["category"] = json!(c);
                    }
                    line
                })
                .collect();
        }
        body
    }
}

#[derive(Default)]
struct Month {
    sales: i64,
    revenue: i64,
    tier: usize,
    rated_sales: i64,
    rated_base: i64,
    rated: i64,
}

/// What the rules give, sale by sale in booking order: (partner, order,
/// kind) -> amount.
struct Ledger<'a> {
    models: [&'a Model; 2],
    shares: [&'a [i64]; 2],
    months: HashMap<(usize, NaiveDate), Month>,
    expected: BTreeMap<(usize, String, &'static str), i64>,
}

impl Ledger<'_> {
    fn book(&mut self, agreement: usize, order: &str, kind: &'static str, total: i64) {
        let partners = if agreement == 0 { vec![0] } else { vec![1, 2] };
        for (p, part) in partners
            .into_iter()
            .zip(split(total, self.shares[agreement]))
        {
            if part != 0 {
                *self
                    .expected
                    .entry((p, order.to_owned(), kind))
                    .or_default() += part;
            }
        }
    }

    fn sale(&mut self, s: &Sale) {
        let m = self.models[s.agreement];
        if let Some(first) = s.first
            && (m.months == 0 || s.at >= first.checked_add_months(Months::new(m.months)).unwrap())
        {
            return; // a renewal past the rule's months earns nothing and counts for nothing
        }
        let key = (s.agreement, s.at.date_naive().with_day(1).unwrap());
        let mut month = self.months.remove(&key).unwrap_or_default();
        let rank = month.sales + 1;
        let revenue = month.revenue + s.amount;
        let position = if m.by_count { rank } else { revenue };
        let step = m.steps.iter().filter(|(from, _)| *from <= position).count();
        let rate = if step == 0 {
            m.base
        } else {
            m.steps[step - 1].1
        };
        // The default part, and each named category's amount and units.
        let mut default: Option<i64> = None;
        let mut named: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        if s.items.is_empty() {
            default = Some(s.amount);
        }
        for (_, category, amount, quantity) in &s.items {
            match category.filter(|c| m.categories.iter().any(|(n, _)| n == c)) {
                Some(c) => {
                    let e = named.entry(c).or_default();
                    e.0 += amount;
                    e.1 += quantity;
                }
                None => *default.get_or_insert(0) += amount,
            }
        }
        let default_commission = default.map(|a| match rate {
            Rate::Pct(b) => pct(a, b),
            Rate::Flat(f) => f,
        });
        let mut total = default_commission.unwrap_or(0);
        for (c, (amount, units)) in &named {
            let (_, rate) = m.categories.iter().find(|(n, _)| n == c).unwrap();
            total += match rate {
                Rate::Pct(b) => pct(*amount, *b),
                Rate::Flat(f) => f * units,
            };
        }
        self.book(s.agreement, &s.order, "conversion", total);
        if m.rerate && step > month.tier {
            let rerated = match rate {
                Rate::Pct(b) => pct(month.rated_base, b),
                Rate::Flat(f) => f * month.rated_sales,
            };
            if rerated > month.rated {
                self.book(
                    s.agreement,
                    &s.order,
                    "tier_adjustment",
                    rerated - month.rated,
                );
                month.rated = rerated;
            }
        }
        for (by_count, at, flat) in &m.bonuses {
            let (was, is) = if *by_count {
                (month.sales, rank)
            } else {
                (month.revenue, revenue)
            };
            if was < *at && *at <= is {
                self.book(s.agreement, &s.order, "bonus", *flat);
            }
        }
        month.sales = rank;
        month.revenue = revenue;
        month.tier = month.tier.max(step);
        if let Some(a) = default {
            month.rated_sales += 1;
            month.rated_base += a;
            month.rated += default_commission.unwrap();
        }
        self.months.insert(key, month);
    }
}

fn random_lines(rng: &mut StdRng, order: &str) -> Vec<(String, Option<&'static str>, i64, i64)> {
    const CATEGORIES: [Option<&str>; 4] = [Some("books"), Some("gifts"), Some("toys"), None];
    (0..rng.random_range(1..=4))
        .map(|i| {
            (
                format!("{order}-{i}"),
                CATEGORIES[rng.random_range(0..CATEGORIES.len())],
                rng.random_range(0..30_000),
                rng.random_range(1..=3),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_month_of_random_sales_books_what_an_independent_calculation_gives() {
    let seed: u64 = std::env::var("MITRA_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("MITRA_TEST_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    let app = spawn_app().await;
    let (program_json, program_model) = program_rule();
    let (agreement_json, agreement_model) = agreement_rule();
    let program = app
        .create_program_with(json!({"commission": program_json, "hold_days": 0}))
        .await;
    let partners = [
        app.create_partner("Ayu").await,
        app.create_partner("Budi").await,
        app.create_partner("Citra").await,
    ];
    app.create_agreement(
        &program,
        &[(&partners[0], 10_000)],
        json!({"coupon_codes": ["ALPHA"]}),
    )
    .await;
    app.create_agreement(
        &program,
        &[(&partners[1], 6_000), (&partners[2], 4_000)],
        json!({"coupon_codes": ["BETA"], "commission": agreement_json}),
    )
    .await;
    let coupons = ["ALPHA", "BETA"];

    // A month, five months back: first payments and one-off sales in it,
    // renewals up to 90 days after their first payment.
    let month = {
        let first = Utc::now().date_naive().with_day(1).unwrap();
        let day = first.checked_sub_months(Months::new(5)).unwrap();
        day.and_hms_opt(0, 0, 0).unwrap().and_utc()
    };
    let mut sales: Vec<Sale> = (0..40)
        .map(|i| {
            let order = format!("O-{i}");
            let items = if rng.random_bool(0.5) {
                random_lines(&mut rng, &order)
            } else {
                Vec::new()
            };
            let amount = if items.is_empty() {
                rng.random_range(1_000..60_000)
            } else {
                items.iter().map(|l| l.2).sum()
            };
            Sale {
                agreement: usize::from(rng.random_bool(0.4)),
                amount,
                items,
                at: month + Duration::seconds(rng.random_range(0..27 * 86_400)),
                subscription: rng.random_bool(0.25).then(|| format!("sub-{i}")),
                first: None,
                order,
            }
        })
        .collect();
    let mut renewals: Vec<Sale> = Vec::new();
    for s in sales.iter().filter(|s| s.subscription.is_some()) {
        for r in 0..rng.random_range(1..=3) {
            let order = format!("{}-R{r}", s.order);
            let items = if rng.random_bool(0.3) {
                random_lines(&mut rng, &order)
            } else {
                Vec::new()
            };
            renewals.push(Sale {
                amount: if items.is_empty() {
                    rng.random_range(1_000..20_000)
                } else {
                    items.iter().map(|l| l.2).sum()
                },
                items,
                at: s.at + Duration::days(rng.random_range(10..90)),
                first: Some(s.at),
                order,
                ..s.clone()
            });
        }
    }
    // Renewals in any order; each after its first payment is booked.
    for i in (1..renewals.len()).rev() {
        renewals.swap(i, rng.random_range(0..=i));
    }

    // Book: every first payment and one-off sale, then the renewals, each
    // phase in posting order (one worker batch each).
    for phase in [&sales, &renewals] {
        for s in phase.iter() {
            let res = app.post_conversion(&program, &s.body(&coupons)).await;
            assert_status(res, StatusCode::ACCEPTED).await;
        }
        app.attribute().await;
    }

    // The independent calculation, in the same order.
    let shares: [&[i64]; 2] = [&[10_000], &[6_000, 4_000]];
    let mut ledger = Ledger {
        models: [&program_model, &agreement_model],
        shares,
        months: HashMap::new(),
        expected: BTreeMap::new(),
    };
    sales.extend(renewals);
    for s in &sales {
        ledger.sale(s);
    }

    let mut booked: BTreeMap<(usize, String, &'static str), i64> = BTreeMap::new();
    for (p, partner) in partners.iter().enumerate() {
        let list = assert_status(
            app.get(
                &format!("/v1/partners/{}/commissions?limit=500", s(&partner["id"])),
                &app.admin_token,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        for c in list["data"].as_array().unwrap() {
            let kind = match s(&c["kind"]) {
                "conversion" => "conversion",
                "bonus" => "bonus",
                "tier_adjustment" => "tier_adjustment",
                other => panic!("unexpected kind {other}"),
            };
            *booked
                .entry((p, s(&c["order_id"]).to_owned(), kind))
                .or_default() += c["amount_minor"].as_i64().unwrap();
        }
    }
    assert_eq!(booked, ledger.expected, "seed {seed}");
    let totals = |m: &BTreeMap<(usize, String, &'static str), i64>| {
        let mut t = [0i64; 3];
        for ((p, _, _), amount) in m {
            t[*p] += amount;
        }
        t
    };
    assert_eq!(totals(&booked), totals(&ledger.expected), "seed {seed}");
    // The run exercised what it is meant to: both tiers' steps, re-rating,
    // bonuses, categories and renewals (paid and not).
    let kinds: Vec<&str> = ledger.expected.keys().map(|k| k.2).collect();
    assert!(kinds.contains(&"bonus"), "seed {seed}: no bonus reached");
    assert!(
        sales.iter().any(|s| s.first.is_some()),
        "seed {seed}: no renewal"
    );
    let renewal_statuses: Vec<Value> = {
        let mut v = Vec::new();
        for s in sales.iter().filter(|s| s.first.is_some()).take(3) {
            v.push(app.conversion(&program, &s.order).await["attributed_via"].clone());
        }
        v
    };
    assert!(renewal_statuses.iter().all(|v| v == "subscription"));
}
