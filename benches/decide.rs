//! The attribution worker's decision (`decide::attribute`: attribution,
//! pricing, the split) for one batch of 500 sales, the most one transaction
//! claims, under a flat rule beside tiered, itemized and fully optioned
//! rules, in the same run: the options real programs use should cost
//! booking little. benches/conversions_load.sh measures the whole money
//! path, database included (`LOAD_RULES=tiered`).
//!
//!     cargo bench --bench decide

use chrono::{DateTime, Duration, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mitra::attribution::decide::{self, Claimed, Facts, ProgramTerms, Terms};
use mitra::attribution::pricing::{self, MonthState};
use mitra::config::FraudSettings;
use mitra::domain::{
    AgreementId, Category, CommissionRules, ConversionId, Currency, EnrollmentStatus, Event, Item,
    PartnerId, ProgramId,
};
use serde_json::{Value, json};
use std::hint::black_box;

const BATCH: i64 = 500;
const PROGRAM: ProgramId = ProgramId::from_db(1);
const AGREEMENT: AgreementId = AgreementId::from_db(7);

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_000_000, 0).unwrap()
}

/// A batch of sales of 123.45 (with three lines when `lines`), by coupon,
/// for one agreement split 3333/6667, and the facts `load` would give.
fn batch(rules: Value, lines: bool) -> (Vec<Claimed>, Facts) {
    let items = |i: i64| {
        let line = |n: i64, category: Option<&str>, amount| Item {
            sku: format!("{i}-{n}"),
            category: category.map(|c| Category::parse(c).unwrap()),
            amount_minor: amount,
            quantity: 1 + n,
        };
        sqlx::types::Json(vec![
            line(0, Some("books"), 4_000),
            line(1, Some("gift-cards"), 2_345),
            line(2, None, 6_000),
        ])
    };
    let rows: Vec<Claimed> = (1..=BATCH)
        .map(|i| Claimed {
            id: ConversionId::from_db(i),
            program_id: PROGRAM,
            event: Event::Sale,
            order_id: format!("o-{i}"),
            amount_minor: 12_345,
            currency: Currency::parse("EUR").unwrap(),
            click_id: None,
            coupon: Some("BENCH".into()),
            occurred_at: t0(),
            request_id: None,
            items: lines.then(|| items(i)),
            subscription_id: None,
        })
        .collect();
    let mut facts = Facts::default();
    facts.programs.insert(
        PROGRAM,
        vec![ProgramTerms {
            version: 1,
            since: t0() - Duration::days(30),
            rules: CommissionRules::parse(&rules).unwrap(),
            window_days: 30,
            hold_days: 30,
        }],
    );
    facts.coupons.insert((PROGRAM, "BENCH".into()), AGREEMENT);
    let terms = Terms {
        version: 1,
        rules: CommissionRules::default(),
        shares: vec![
            (PartnerId::from_db(11), 3_333),
            (PartnerId::from_db(12), 6_667),
        ],
        valid_from: None,
        valid_until: None,
    };
    for r in &rows {
        facts.terms.insert(r.id, terms.clone());
    }
    for (partner, _) in &terms.shares {
        facts
            .members
            .insert((PROGRAM, *partner), (EnrollmentStatus::Active, None));
    }
    facts.months.insert(
        (AGREEMENT, pricing::month_of(t0().date_naive())),
        MonthState::default(),
    );
    (rows, facts)
}

fn benches(c: &mut Criterion) {
    let tiers = json!({"by": "count", "rerate": true, "steps": [
        {"from": 100, "percent_bps": 1200}, {"from": 250, "percent_bps": 1500},
        {"from": 400, "percent_bps": 1800}
    ]});
    let categories = json!({"books": {"percent_bps": 500}, "gift-cards": {"flat_minor": 50},
                            "electronics": {"percent_bps": 300}});
    let bonuses = json!([{"by": "count", "at": 300, "flat_minor": 5_000},
                         {"by": "revenue", "at": 5_000_000, "flat_minor": 20_000}]);
    let cases = [
        ("flat", json!({"sale": {"percent_bps": 1000}}), false),
        (
            "tiered",
            json!({"sale": {"percent_bps": 1000, "tiers": tiers}}),
            false,
        ),
        (
            "itemized",
            json!({"sale": {"percent_bps": 1000, "categories": categories}}),
            true,
        ),
        (
            "tiered_itemized_bonuses",
            json!({"sale": {"percent_bps": 1000, "tiers": tiers, "categories": categories,
                            "bonuses": bonuses}}),
            true,
        ),
    ];
    let fraud = FraudSettings::default();
    let mut g = c.benchmark_group("decide_500_sales");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, rules, lines) in cases {
        let (rows, facts) = batch(rules, lines);
        // Every case books what it should: one commission per partner per sale.
        let decided = decide::attribute(&rows, &facts, &fraud, t0());
        assert!(decided.bookings.len() >= 2 * BATCH as usize, "{name}");
        g.bench_function(name, |b| {
            b.iter(|| decide::attribute(black_box(&rows), black_box(&facts), &fraud, t0()))
        });
    }
    g.finish();
}

criterion_group!(decide_benches, benches);
criterion_main!(decide_benches);
