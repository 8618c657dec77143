//! Verifiable statements: the ledger chained per program, signed statements,
//! and `mitra verify-statement` on real statements and tampered ones.

use crate::helpers::*;
use mitra::background::Step;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

const MINUTE: chrono::Duration = chrono::Duration::minutes(1);

async fn book(app: &TestApp, f: &Fixture, order: &str, amount: i64) -> Value {
    let click = app.click_id_ago(&f.link, MINUTE);
    assert_status(
        app.post_conversion(&f.program, &sale(order, amount, &click))
            .await,
        StatusCode::ACCEPTED,
    )
    .await;
    app.attribute().await;
    app.conversion(&f.program, order).await
}

pub async fn chain_all(app: &TestApp) {
    let chainer = app.workers.chainer();
    while chainer.step().await.unwrap() != Step::Idle {}
}

pub async fn statement(app: &TestApp, program: &Value, partner: &Value, after: i64) -> Value {
    let path = format!(
        "/v1/programs/{}/partners/{}/statement?after_seq={after}",
        s(&program["id"]),
        s(&partner["id"])
    );
    assert_status(app.get(&path, s(&partner["api_key"])).await, StatusCode::OK).await
}

pub async fn public_key(app: &TestApp, program: &Value, token: &str) -> String {
    let path = format!("/v1/programs/{}/statement-key", s(&program["id"]));
    let key = assert_status(app.get(&path, token).await, StatusCode::OK).await;
    assert_eq!(key["algorithm"], "Ed25519");
    assert_eq!(key["key_id"], 1);
    s(&key["public_key"]).to_owned()
}

/// Runs `mitra verify-statement` on files holding these JSON values: its
/// exit code and what it printed.
pub fn verify(key: &str, statement: &Value, continuing: Option<(&Value, &Value)>) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!(
        "mitra-statements-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, v: &Value| {
        let path = dir.join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
        path
    };
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mitra"));
    cmd.env_clear()
        .arg("verify-statement")
        .arg(write("statement.json", statement))
        .args(["--public-key", key]);
    if let Some((previous, proof)) = continuing {
        cmd.arg("--previous")
            .arg(write("previous.json", previous))
            .arg("--chain")
            .arg(write("proof.json", proof));
    }
    let out = cmd.output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

fn failed(problems: &[&str]) -> String {
    let mut out: String = problems.iter().map(|p| format!("problem: {p}\n")).collect();
    out.push_str("FAILED: the statement does not verify\n");
    out
}

#[tokio::test]
async fn a_real_statement_verifies_and_each_kind_of_tampering_fails() {
    // Arrange: two sales, one approved early and paid out.
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let a = book(&app, &f, "S-1", 10_000).await;
    book(&app, &f, "S-2", 25_000).await;
    let approve = format!("/v1/commissions/{}/approve", s(&a["commissions"][0]["id"]));
    assert_status(
        app.request(
            reqwest::Method::POST,
            &approve,
            Some(s(&f.program["api_key"])),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let payouts = format!("/v1/programs/{}/payouts", s(&f.program["id"]));
    assert_status(
        app.post(&payouts, s(&f.program["api_key"]), &json!({}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    chain_all(&app).await;

    // Act: the partner reads its statement and the program's key.
    let statement = statement(&app, &f.program, &f.partner, 0).await;
    let key = public_key(&app, &f.program, s(&f.partner["api_key"])).await;

    // Assert: created, created, approved (2), paid (2), in chain order.
    let kinds: Vec<(i64, &str, &str, i64)> = statement["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["seq"].as_i64().unwrap(),
                s(&e["kind"]),
                s(&e["bucket"]),
                e["amount_minor"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (1, "created", "pending", 1_000),
            (2, "created", "pending", 2_500),
            (3, "approved", "pending", -1_000),
            (4, "approved", "approved", 1_000),
            (5, "paid", "approved", -1_000),
            (6, "paid", "paid", 1_000),
        ]
    );
    assert_eq!(statement["head"]["seq"], 6);
    assert_eq!(statement["entries"][5]["hash"], statement["head"]["hash"]);
    assert_eq!(
        statement["closing"],
        json!([{"currency": "EUR", "pending_minor": 2_500, "approved_minor": 0, "paid_minor": 1_000}])
    );
    let (code, out) = verify(&key, &statement, None);
    assert_eq!(
        (code, out),
        (
            0,
            format!(
                "ok: statement of {} in {}: 6 entries, chain links 0 to 6, signed by key 1\n\
                 closing EUR: pending 2500, approved 0, paid 1000\n",
                s(&f.partner["id"]),
                s(&f.program["id"])
            )
        )
    );

    let mut changed = statement.clone();
    changed["entries"][0]["amount_minor"] = json!(5_000);
    assert_eq!(
        verify(&key, &changed, None),
        (
            1,
            failed(&[
                "entry 1: its hash does not match its content",
                "EUR: opening plus entries is not the closing balance",
            ])
        )
    );

    let mut removed = statement.clone();
    removed["entries"].as_array_mut().unwrap().remove(2);
    assert_eq!(
        verify(&key, &removed, None),
        (
            1,
            failed(&[
                "the signature does not verify under the program's statement key",
                "EUR: opening plus entries is not the closing balance",
            ])
        )
    );

    let mut reordered = statement.clone();
    reordered["entries"].as_array_mut().unwrap().swap(1, 2);
    assert_eq!(
        verify(&key, &reordered, None),
        (
            1,
            failed(&[
                "the signature does not verify under the program's statement key",
                "entry 2: entries are not in chain order, or lie outside the statement's range",
            ])
        )
    );

    let other = app.create_program().await;
    let other_key = public_key(&app, &other, &app.admin_token).await;
    assert_ne!(other_key, key);
    assert_eq!(
        verify(&other_key, &statement, None),
        (
            1,
            failed(&["the signature does not verify under the program's statement key"])
        )
    );
}

#[tokio::test]
async fn a_program_proves_no_entry_was_removed_between_two_statements() {
    // Two partners share the agreement, so their entries interleave in the chain.
    let app = spawn_app().await;
    let program = app.create_program().await;
    let ayu = app.create_partner("Ayu").await;
    let budi = app.create_partner("Budi").await;
    let agreement = app
        .create_agreement(&program, &[(&ayu, 5_000), (&budi, 5_000)], json!({}))
        .await;
    let link = app.create_link(&agreement, json!({})).await;
    let f = Fixture {
        program: program.clone(),
        partner: ayu.clone(),
        agreement,
        link,
    };
    book(&app, &f, "C-1", 10_000).await;
    chain_all(&app).await;
    let earlier = statement(&app, &program, &ayu, 0).await;
    book(&app, &f, "C-2", 30_000).await;
    chain_all(&app).await;
    let after = earlier["head"]["seq"].as_i64().unwrap();
    let later = statement(&app, &program, &ayu, after).await;
    let proof_path = format!(
        "/v1/programs/{}/chain?after_seq={after}&to_seq={}",
        s(&program["id"]),
        later["head"]["seq"]
    );
    let proof = assert_status(
        app.get(&proof_path, s(&ayu["api_key"])).await,
        StatusCode::OK,
    )
    .await;
    let key = public_key(&app, &program, s(&ayu["api_key"])).await;

    assert_eq!((after, later["head"]["seq"].as_i64().unwrap()), (2, 4));
    assert_eq!(later["opening"], earlier["closing"]);
    assert_eq!(
        later["closing"],
        json!([{"currency": "EUR", "pending_minor": 2_000, "approved_minor": 0, "paid_minor": 0}])
    );
    let partners: Vec<&str> = proof["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| s(&l["partner_id"]))
        .collect();
    assert_eq!(partners.len(), 2);
    assert!(partners.contains(&s(&ayu["id"])) && partners.contains(&s(&budi["id"])));
    let (code, out) = verify(&key, &later, Some((&earlier, &proof)));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with(&format!(
            "ok: statement of {} in {}: 1 entry, chain links 2 to 4, signed by key 1, \
             continuing the previous statement with nothing removed\n",
            s(&ayu["id"]),
            s(&program["id"])
        )),
        "{out}"
    );

    // Without Ayu's link, the proof no longer reaches the later head.
    let mine = proof["links"]
        .as_array()
        .unwrap()
        .iter()
        .position(|l| l["partner_id"] == ayu["id"])
        .unwrap();
    let mut dropped = proof.clone();
    dropped["links"].as_array_mut().unwrap().remove(mine);
    let (code, out) = verify(&key, &later, Some((&earlier, &dropped)));
    assert_eq!(code, 1);
    assert_eq!(
        out.lines().next().unwrap(),
        format!(
            "problem: the proof does not link the two statements: link {} is missing or out of order",
            3 + mine
        )
    );
    // A partner may not read another program's chain.
    let stranger = app.create_partner("Citra").await;
    assert_problem(
        app.get(&proof_path, s(&stranger["api_key"])).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

/// The fixture's program and partner as the database keys them.
fn program_and_partner(f: &Fixture) -> (i64, i64) {
    let program = mitra::domain::ProgramId::parse(s(&f.program["id"])).unwrap();
    let partner = mitra::domain::PartnerId::parse(s(&f.partner["id"])).unwrap();
    (program.get(), partner.get())
}

/// A booking batch's entries (a thousand here, 8 KB of ids) wait for the
/// chain as one queued array, compressed with lz4 where the server has it
/// (Debian's and the official images' builds do), and are chained whole.
#[tokio::test]
async fn a_batch_of_a_thousand_entries_is_queued_compressed_with_lz4_and_chained_whole() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let (program, partner) = program_and_partner(&f);
    let mut tx = app.db.begin().await.unwrap();
    sqlx::query(
        "insert into ledger_entries (program_id, partner_id, currency, bucket, amount_minor, kind, actor)
         select $1, $2, 'EUR', 'pending', g, 'created', 'test' from generate_series(1, 1000) g",
    )
    .bind(program)
    .bind(partner)
    .execute(&mut *tx)
    .await
    .unwrap();
    let (ids, compression): (i32, Option<String>) = sqlx::query_as(
        "select cardinality(entry_ids), pg_column_compression(entry_ids) from ledger_chain_queue",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!((ids, compression.as_deref()), (1000, Some("lz4")));
    tx.commit().await.unwrap();
    // The outbox's arrays are set the same way.
    let outbox: Vec<(String, String)> = sqlx::query_as(
        "select attname::text, attcompression::text from pg_attribute
         where attrelid = 'outbox_queue'::regclass and attname in ('ids', 'statuses')
         order by attname",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        outbox,
        vec![("ids".into(), "l".into()), ("statuses".into(), "l".into())]
    );

    chain_all(&app).await;
    let (links, sum, last): (i64, i64, i64) = sqlx::query_as(
        "select count(*), sum(e.amount_minor)::bigint, max(c.seq) from ledger_chain c
         join ledger_entries e on e.id = c.entry_id where c.program_id = $1",
    )
    .bind(program)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!((links, sum, last), (1000, 500_500, 1000));
}

#[tokio::test]
async fn an_entry_committed_late_is_chained_after_those_committed_before_it() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let (program, partner) = program_and_partner(&f);
    let insert = "insert into ledger_entries (program_id, partner_id, currency, bucket, amount_minor, kind, actor)
                  values ($1, $2, 'EUR', 'pending', $3, 'created', 'test') returning id";
    let url = app.settings.expose_database_url().to_owned();
    let mut slow = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut slow_tx = slow.begin().await.unwrap();
    let early: i64 = sqlx::query_scalar(insert)
        .bind(program)
        .bind(partner)
        .bind(100i64)
        .fetch_one(&mut *slow_tx)
        .await
        .unwrap();
    let late: i64 = sqlx::query_scalar(insert)
        .bind(program)
        .bind(partner)
        .bind(200i64)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(early < late);

    chain_all(&app).await;
    slow_tx.commit().await.unwrap();
    chain_all(&app).await;

    let chained: Vec<(i64, i64)> =
        sqlx::query_as("select entry_id, seq from ledger_chain order by seq")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(chained, vec![(late, 1), (early, 2)]);
    let waiting: i64 = sqlx::query_scalar("select count(*) from ledger_chain_queue")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(waiting, 0);
    // The chain refuses to be rewritten, like the ledger.
    let rewrite = sqlx::query("delete from ledger_chain")
        .execute(&app.db)
        .await
        .unwrap_err();
    assert!(
        rewrite
            .to_string()
            .contains("ledger entries are never changed or deleted"),
        "{rewrite}"
    );
    // Nor does it take a link for an entry that does not exist.
    let dangling = sqlx::query(
        "insert into ledger_chain (entry_id, program_id, partner_id, seq, digest, prev_hash, hash)
         select max(entry_id) + 1000, program_id, partner_id, max(seq) + 1, '\\x00', '\\x00', '\\x00'
         from ledger_chain group by program_id, partner_id",
    )
    .execute(&app.db)
    .await
    .unwrap_err();
    assert_eq!(
        dangling
            .as_database_error()
            .and_then(|d| d.code())
            .as_deref(),
        Some("23503"),
        "{dangling}"
    );
}
