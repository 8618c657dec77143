//! Booking, the one path every commission comes to exist by: exactly once
//! per conversion and partner, and per bonus or step of an agreement's
//! month, however often it is asked to book the same one.

use crate::helpers::*;
use chrono::{Datelike, NaiveDate, Utc};
use mitra::commissions::booking::{self, NewCommission};
use mitra::domain::{
    AgreementId, AppliedRule, BasisPoints, CommissionKind, ConversionId, Currency, EarningEvent,
    PartnerId, ProgramId, Rule, RuleSource,
};
use serde_json::json;
use sqlx::Connection;

/// A sale of `order`, stored as processed (the worker leaves it alone).
async fn sale(app: &TestApp, program: ProgramId, order: &str) -> ConversionId {
    let id: i64 = sqlx::query_scalar(
        "insert into conversions (program_id, idempotency_key, order_id, event, amount_minor,
                                  currency, occurred_at, status, processed_at)
         values ($1, $2, $2, 'sale', 10000, 'EUR', now(), 'attributed', now()) returning id",
    )
    .bind(program.get())
    .bind(order)
    .fetch_one(&app.db)
    .await
    .unwrap();
    ConversionId::from_db(id)
}

fn commission(
    f: &Fixture,
    conversion: ConversionId,
    kind: CommissionKind,
    once: Option<(NaiveDate, &str)>,
) -> NewCommission {
    let rule = Rule::PercentBps(BasisPoints::new(1000).unwrap());
    NewCommission {
        conversion_id: conversion,
        program_id: ProgramId::parse(s(&f.program["id"])).unwrap(),
        partner_id: PartnerId::parse(s(&f.partner["id"])).unwrap(),
        agreement_id: AgreementId::parse(s(&f.agreement["id"])).unwrap(),
        agreement_version: 1,
        program_version: 1,
        kind,
        rule_source: RuleSource::Program,
        period: once.map(|(month, _)| month),
        once_key: once.map(|(_, key)| key.to_owned()),
        rule: AppliedRule::plain(EarningEvent::Sale, rule),
        base_minor: 10000,
        total_minor: 1000,
        share_bps: 10000,
        amount_minor: 1000,
        currency: Currency::parse("EUR").unwrap(),
        review: false,
        fraud_reasons: Vec::new(),
        approve_after: Utc::now(),
    }
}

/// The program's commissions and ledger entries.
async fn counts(app: &TestApp, program: ProgramId) -> (i64, i64) {
    sqlx::query_as(
        "select (select count(*) from commissions where program_id = $1),
                (select count(*) from ledger_entries where program_id = $1)",
    )
    .bind(program.get())
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn booking_the_same_commission_again_or_twice_in_one_batch_books_it_once() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let program = ProgramId::parse(s(&f.program["id"])).unwrap();
    let (first, second) = (
        sale(&app, program, "A-1").await,
        sale(&app, program, "A-2").await,
    );
    let today = Utc::now().date_naive();
    let month = today.with_day(1).unwrap();
    let own = commission(&f, first, CommissionKind::Conversion, None);
    let bonus = commission(
        &f,
        second,
        CommissionKind::Bonus,
        Some((month, "bonus:count:2")),
    );

    let mut tx = app.db.begin().await.unwrap();
    let booked = booking::book(&mut tx, &[own.clone(), own.clone(), bonus.clone()])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let kinds: Vec<CommissionKind> = booked.iter().map(|(_, n)| n.kind).collect();
    assert_eq!(
        kinds,
        [CommissionKind::Conversion, CommissionKind::Bonus],
        "the repeat within the batch is left out"
    );

    // Asked again: the same commission, and the month's bonus once more,
    // reached this time by another sale.
    let bonus_again = commission(
        &f,
        first,
        CommissionKind::Bonus,
        Some((month, "bonus:count:2")),
    );
    let mut tx = app.db.begin().await.unwrap();
    let booked = booking::book(&mut tx, &[own.clone(), bonus_again])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(booked.is_empty(), "booked again: {booked:?}");
    assert_eq!(counts(&app, program).await, (2, 2));
}

/// Two transactions booking one commission at once (which the claim locks
/// keep from happening): the second fails with the unique key's error and
/// rolls back, and asked again it books nothing. Never two.
#[tokio::test]
async fn two_transactions_booking_one_commission_at_once_book_it_once() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let program = ProgramId::parse(s(&f.program["id"])).unwrap();
    let own = commission(
        &f,
        sale(&app, program, "B-1").await,
        CommissionKind::Conversion,
        None,
    );

    let mut first = app.db.begin().await.unwrap();
    assert_eq!(
        booking::book(&mut first, std::slice::from_ref(&own))
            .await
            .unwrap()
            .len(),
        1
    );
    let url = app.settings.expose_database_url().to_owned();
    let racing = tokio::spawn({
        let own = own.clone();
        async move {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            // Waits on the first's uncommitted row in the unique index.
            let result = booking::book(&mut tx, &[own]).await;
            result.map(|b| b.len())
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    first.commit().await.unwrap();
    let err = racing
        .await
        .unwrap()
        .expect_err("the second booking must fail");
    let code = err
        .as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("23505"), "{err}");

    let mut retry = app.db.begin().await.unwrap();
    assert!(booking::book(&mut retry, &[own]).await.unwrap().is_empty());
    retry.commit().await.unwrap();
    assert_eq!(counts(&app, program).await, (1, 1));
}
