//! The admin API's happy paths and every validation error.

use crate::helpers::*;
use mitra::domain::LinkId;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn creating_a_program_returns_it_with_keys_shown_once() {
    let app = spawn_app().await;
    let program = app
        .create_program_with(json!({"attribution_window_days": null, "hold_days": null}))
        .await;
    assert!(s(&program["id"]).starts_with("prg_"));
    assert_eq!(program["name"], "Batik Shop");
    assert_eq!(program["currency"], "EUR");
    assert_eq!(
        program["landing_domains"],
        json!(["shop.example", "www.shop.example"])
    );
    assert_eq!(program["default_url"], "https://shop.example/");
    assert_eq!(program["attribution_window_days"], 30, "default window");
    assert_eq!(program["hold_days"], 30, "default hold");
    assert_eq!(program["commission"]["sale"]["percent_bps"], 1000);
    assert!(s(&program["api_key"]).starts_with("mitra_prg_"));
    assert!(s(&program["webhook_secret"]).starts_with("whsec_"));

    let path = format!("/v1/programs/{}", s(&program["id"]));
    let read = assert_status(app.get(&path, &app.admin_token).await, StatusCode::OK).await;
    assert_eq!(read["id"], program["id"]);
    assert!(read.get("api_key").is_none() && read.get("webhook_secret").is_none());
    // The program's own key reads it too.
    let own = assert_status(app.get(&path, s(&program["api_key"])).await, StatusCode::OK).await;
    assert_eq!(own["id"], program["id"]);
}

#[tokio::test]
async fn api_keys_are_stored_hashed() {
    let app = spawn_app().await;
    let program = app.create_program().await;
    let partner = app.create_partner("Ayu").await;
    let stored: Vec<Vec<u8>> = sqlx::query_scalar(
        "select api_key_hash from programs union all select api_key_hash from partners",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(stored.len(), 2);
    for (hash, key) in stored
        .iter()
        .zip([&program["api_key"], &partner["api_key"]])
    {
        assert_eq!(hash.len(), 32);
        assert!(!String::from_utf8_lossy(hash).contains(s(key)));
    }
    let dump: String =
        sqlx::query_scalar("select string_agg(t::text, ' ') from (select * from programs) t")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(!dump.contains(s(&program["api_key"])));
}

#[tokio::test]
async fn invalid_program_fields_are_each_reported() {
    let app = spawn_app().await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(201)}), "name"),
        (json!({"currency": "eur"}), "currency"),
        (json!({"currency": "XXX"}), "currency"),
        (json!({"currency": "EURO"}), "currency"),
        (json!({"landing_domains": []}), "landing_domains"),
        (
            json!({"landing_domains": ["https://shop.example"]}),
            "landing_domains[0]",
        ),
        (
            json!({"landing_domains": ["shop.example", "shop example"]}),
            "landing_domains[1]",
        ),
        (json!({"default_url": "not a url"}), "default_url"),
        (json!({"default_url": "javascript:alert(1)"}), "default_url"),
        (
            json!({"default_url": "https://elsewhere.example/"}),
            "default_url",
        ),
        (
            json!({"default_url": "https://u:p@shop.example/"}),
            "default_url",
        ),
        (
            json!({"attribution_window_days": 0}),
            "attribution_window_days",
        ),
        (
            json!({"attribution_window_days": 366}),
            "attribution_window_days",
        ),
        (json!({"hold_days": -1}), "hold_days"),
        (json!({"commission": []}), "commission"),
        (
            json!({"commission": {"sale": {"percent_bps": 10001}}}),
            "commission.sale",
        ),
        (
            json!({"commission": {"sale": {"percent_bps": -5}}}),
            "commission.sale",
        ),
        (
            json!({"commission": {"lead": {"flat_minor": -1}}}),
            "commission.lead",
        ),
        (
            json!({"commission": {"refund": {"flat_minor": 1}}}),
            "commission.refund",
        ),
        (
            json!({"commission": {"sale": {"percent_bps": 100, "flat_minor": 1}}}),
            "commission.sale",
        ),
        // What the OpenAPI document states, the server holds to: lengths
        // as sent, no control characters, ASCII hosts, RFC 3986 URLs.
        (json!({"name": format!(" {} ", "x".repeat(199))}), "name"),
        (json!({"name": "Batik\tShop"}), "name"),
        (json!({"description": "Sale!\u{7}"}), "description"),
        (
            json!({"landing_domains": ["bücher.example"]}),
            "landing_domains[0]",
        ),
        (
            json!({"landing_domains": ["010.0.0.1"]}),
            "landing_domains[0]",
        ),
        (
            json!({"default_url": "https://shop.example/a b"}),
            "default_url",
        ),
        (
            json!({"default_url": "https://shop.example/bücher"}),
            "default_url",
        ),
    ];
    for (overrides, field) in cases {
        let mut body = json!({
            "name": "Batik Shop", "currency": "EUR", "landing_domains": ["shop.example"],
            "default_url": "https://shop.example/", "commission": {"sale": {"percent_bps": 1000}}
        });
        merge(&mut body, overrides.clone());
        let res = app.post("/v1/programs", &app.admin_token, &body).await;
        let problem = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(
            invalid_fields(&problem),
            vec![field.to_owned()],
            "{overrides}"
        );
    }
    // Several invalid fields are reported together.
    let body = json!({"name": "", "currency": "x", "landing_domains": ["ok.example"],
                      "default_url": "https://ok.example/", "commission": {}});
    let problem = assert_problem(
        app.post("/v1/programs", &app.admin_token, &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(invalid_fields(&problem), vec!["name", "currency"]);
    // Multi-line text keeps its line feeds; names and hosts are normalized.
    let program = app
        .create_program_with(json!({
            "name": "  Batik Shop ",
            "landing_domains": ["Shop.Example", "XN--BCHER-KVA.example"],
            "description": "Ten percent.\nPaid monthly.",
        }))
        .await;
    assert_eq!(program["name"], "Batik Shop");
    assert_eq!(
        program["landing_domains"],
        json!(["shop.example", "xn--bcher-kva.example"])
    );
    assert_eq!(program["description"], "Ten percent.\nPaid monthly.");
}

#[tokio::test]
async fn lists_are_paginated_with_a_cursor() {
    let app = spawn_app().await;
    for _ in 0..5 {
        app.create_program().await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/programs?limit=2&cursor={c}"),
            None => "/v1/programs?limit=2".to_owned(),
        };
        let page = assert_status(app.get(&path, &app.admin_token).await, StatusCode::OK).await;
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|p| s(&p["id"]).to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let mut sorted = seen.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 5, "no program twice");
}

#[tokio::test]
async fn creating_a_partner_returns_it_with_its_key() {
    let app = spawn_app().await;
    let partner = app.create_partner("Ayu Lestari").await;
    assert!(s(&partner["id"]).starts_with("ptn_"));
    assert_eq!(partner["name"], "Ayu Lestari");
    assert_eq!(partner["email"], "ayu.lestari@example.com");
    assert!(s(&partner["api_key"]).starts_with("mitra_ptn_"));
    let path = format!("/v1/partners/{}", s(&partner["id"]));
    let own = assert_status(app.get(&path, s(&partner["api_key"])).await, StatusCode::OK).await;
    assert_eq!(own["id"], partner["id"]);
    assert!(own.get("api_key").is_none());
}

#[tokio::test]
async fn invalid_partner_fields_are_reported() {
    let app = spawn_app().await;
    for (body, fields) in [
        (json!({"name": "", "email": "a@example.com"}), vec!["name"]),
        (json!({"name": "A", "email": "not-an-email"}), vec!["email"]),
        (json!({"name": " ", "email": "@"}), vec!["name", "email"]),
    ] {
        let problem = assert_problem(
            app.post("/v1/partners", &app.admin_token, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(invalid_fields(&problem), fields);
    }
}

#[tokio::test]
async fn an_agreement_splits_among_partners_and_keeps_every_version() {
    let app = spawn_app().await;
    let program = app.create_program().await;
    let ayu = app.create_partner("Ayu").await;
    let budi = app.create_partner("Budi").await;
    let agreement = app
        .create_agreement(
            &program,
            &[(&ayu, 3333), (&budi, 6667)],
            json!({"commission": {"sale": {"percent_bps": 1500}}, "coupon_codes": ["ayu10", "BUDI-5"]}),
        )
        .await;
    assert!(s(&agreement["id"]).starts_with("agr_"));
    assert_eq!(agreement["program_id"], program["id"]);
    assert_eq!(agreement["version"], 1);
    assert_eq!(agreement["partners"].as_array().unwrap().len(), 2);
    assert_eq!(agreement["coupon_codes"], json!(["AYU10", "BUDI-5"]));
    assert_eq!(
        agreement["commission"],
        json!({"sale": {"percent_bps": 1500}})
    );
    assert_eq!(
        agreement["effective_commission"],
        json!({"sale": {"percent_bps": 1500}, "lead": {"flat_minor": 200}}),
        "the override replaces only the events it names"
    );

    // Changing the terms makes version 2.
    let path = format!("/v1/agreements/{}", s(&agreement["id"]));
    let v2 = json!({"partners": [{"partner_id": ayu["id"], "share_bps": 10000}], "coupon_codes": ["AYU10"]});
    let updated = assert_status(app.put(&path, &app.admin_token, &v2).await, StatusCode::OK).await;
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["commission"], Value::Null);
    assert_eq!(updated["effective_commission"], program["commission"]);

    let current = assert_status(app.get(&path, &app.admin_token).await, StatusCode::OK).await;
    assert_eq!(current["version"], 2);
    let v1 = assert_status(
        app.get(&format!("{path}/versions/1"), &app.admin_token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["current_version"], 2);
    assert_eq!(
        v1["partners"].as_array().unwrap().len(),
        2,
        "version 1 is unchanged"
    );
    assert_eq!(v1["commission"], json!({"sale": {"percent_bps": 1500}}));
    let all = assert_status(
        app.get(&format!("{path}/versions"), &app.admin_token).await,
        StatusCode::OK,
    )
    .await;
    let versions: Vec<i64> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, vec![1, 2]);
    let missing = app
        .get(&format!("{path}/versions/3"), &app.admin_token)
        .await;
    assert_problem(missing, StatusCode::NOT_FOUND).await;

    // A program key may change its own agreements.
    let v3 =
        json!({"partners": [{"partner_id": budi["id"], "share_bps": 10000}], "base_version": 2});
    let updated = assert_status(
        app.put(&path, s(&program["api_key"]), &v3).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["version"], 3);
}

#[tokio::test]
async fn a_change_based_on_a_stale_version_is_a_conflict() {
    let app = spawn_app().await;
    let program = app.create_program().await;
    let ayu = app.create_partner("Ayu").await;
    let agreement = app
        .create_agreement(&program, &[(&ayu, 10000)], json!({}))
        .await;
    let path = format!("/v1/agreements/{}", s(&agreement["id"]));
    let body =
        json!({"partners": [{"partner_id": ayu["id"], "share_bps": 10000}], "base_version": 1});
    assert_status(
        app.put(&path, &app.admin_token, &body).await,
        StatusCode::OK,
    )
    .await;
    let res = app.put(&path, &app.admin_token, &body).await;
    assert_problem(res, StatusCode::CONFLICT).await;
}

#[tokio::test]
async fn a_coupon_code_belongs_to_one_agreement_per_program() {
    let app = spawn_app().await;
    let program = app.create_program().await;
    let ayu = app.create_partner("Ayu").await;
    let budi = app.create_partner("Budi").await;
    app.create_agreement(
        &program,
        &[(&ayu, 10000)],
        json!({"coupon_codes": ["AYU10"]}),
    )
    .await;
    app.enroll(&program, &budi).await;
    let path = format!("/v1/programs/{}/agreements", s(&program["id"]));
    let body = json!({"partners": [{"partner_id": budi["id"], "share_bps": 10000}], "coupon_codes": ["ayu10"]});
    let problem = assert_problem(
        app.post(&path, &app.admin_token, &body).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(s(&problem["detail"]).contains("AYU10"));
    // The failed attempt left nothing behind.
    let count: i64 = sqlx::query_scalar("select count(*) from agreements")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 1);
    // Another program may use the same code.
    let other = app.create_program().await;
    app.create_agreement(
        &other,
        &[(&budi, 10000)],
        json!({"coupon_codes": ["AYU10"]}),
    )
    .await;
}

#[tokio::test]
async fn invalid_agreement_terms_are_each_reported() {
    let app = spawn_app().await;
    let program = app.create_program().await;
    let ayu = app.create_partner("Ayu").await;
    let budi = app.create_partner("Budi").await;
    app.enroll(&program, &ayu).await;
    app.enroll(&program, &budi).await;
    let path = format!("/v1/programs/{}/agreements", s(&program["id"]));
    let share = |p: &Value, bps: i64| json!({"partner_id": p["id"], "share_bps": bps});
    let cases: Vec<(Value, &str)> = vec![
        (json!({"partners": []}), "partners"),
        (json!({"partners": [share(&ayu, 5000)]}), "partners"),
        (
            json!({"partners": [share(&ayu, 5000), share(&budi, 5001)]}),
            "partners",
        ),
        (
            json!({"partners": [share(&ayu, 5000), share(&ayu, 5000)]}),
            "partners",
        ),
        (
            json!({"partners": [share(&ayu, 10001)]}),
            "partners[0].share_bps",
        ),
        (
            json!({"partners": [share(&ayu, -1), share(&budi, 10000)]}),
            "partners[0].share_bps",
        ),
        (
            json!({"partners": [{"partner_id": "prg_1", "share_bps": 10000}]}),
            "partners[0].partner_id",
        ),
        (
            json!({"partners": [{"partner_id": "ptn_zzzz", "share_bps": 10000}]}),
            "partners[0].partner_id",
        ),
        (
            json!({"partners": [share(&ayu, 10000)], "commission": {"sale": {"percent_bps": 20000}}}),
            "commission.sale",
        ),
        (
            json!({"partners": [share(&ayu, 10000)], "coupon_codes": ["no spaces"]}),
            "coupon_codes[0]",
        ),
        (
            json!({"partners": [share(&ayu, 10000)], "valid_from": "2027-01-02T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z"}),
            "valid_until",
        ),
    ];
    for (body, field) in cases {
        let res = app.post(&path, &app.admin_token, &body).await;
        let problem = assert_problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(invalid_fields(&problem), vec![field.to_owned()], "{body}");
    }
    let res = app
        .post(
            &path,
            &app.admin_token,
            &json!({"partners": [share(&ayu, 10000)], "valid_from": "yesterday"}),
        )
        .await;
    assert_problem(res, StatusCode::BAD_REQUEST).await;
    // Only a change (PUT) is based on a version: on a create it is an
    // unknown field, as the document says.
    let res = app
        .post(
            &path,
            &app.admin_token,
            &json!({"partners": [share(&ayu, 10000)], "base_version": 1}),
        )
        .await;
    assert_problem(res, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn a_link_carries_a_signed_code_and_its_public_url() {
    let app = spawn_app().await;
    let program = app.create_program().await;
    let ayu = app.create_partner("Ayu").await;
    let agreement = app
        .create_agreement(&program, &[(&ayu, 10000)], json!({}))
        .await;
    let link = app
        .create_link(
            &agreement,
            json!({"destination_url": "https://www.shop.example/batik?color=blue", "sub_ids": {"sub1": "ig-story", "sub3": "nov"}}),
        )
        .await;
    assert!(s(&link["id"]).starts_with("lnk_"));
    let code = s(&link["code"]);
    assert!(code.len() <= 22);
    assert_eq!(
        s(&link["url"]),
        format!("{}/l/{code}", app.settings.public_base())
    );
    assert_eq!(link["agreement_id"], agreement["id"]);
    assert_eq!(
        link["destination_url"],
        "https://www.shop.example/batik?color=blue"
    );
    assert_eq!(link["sub_ids"], json!({"sub1": "ig-story", "sub3": "nov"}));
    assert_eq!(link["disabled"], false);
    let id = LinkId::parse(s(&link["id"])).unwrap();
    assert_eq!(
        mitra::domain::link_code::verify(&app.settings.link_keys, code),
        Some(id)
    );

    let read = assert_status(
        app.get(&format!("/v1/links/{}", s(&link["id"])), &app.admin_token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(read["code"], link["code"]);

    // The partner in the agreement may issue its own links; they are listed for it.
    let own = app
        .post(
            "/v1/links",
            s(&ayu["api_key"]),
            &json!({"agreement_id": agreement["id"]}),
        )
        .await;
    let own = assert_status(own, StatusCode::CREATED).await;
    assert_eq!(own["created_by_partner_id"], ayu["id"]);
    assert_eq!(own["destination_url"], Value::Null);
    let list = assert_status(
        app.get("/v1/links", s(&ayu["api_key"])).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn invalid_link_fields_are_reported() {
    let app = spawn_app().await;
    let program = app.create_program().await;
    let ayu = app.create_partner("Ayu").await;
    let agreement = app
        .create_agreement(&program, &[(&ayu, 10000)], json!({}))
        .await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"destination_url": "https://evil.example/"}),
            "destination_url",
        ),
        (
            json!({"destination_url": "https://evil.shop.example/"}),
            "destination_url",
        ),
        (
            json!({"destination_url": "//shop.example/"}),
            "destination_url",
        ),
        (
            json!({"destination_url": "ftp://shop.example/"}),
            "destination_url",
        ),
        (json!({"sub_ids": {"sub9": "x"}}), "sub_ids"),
        (json!({"sub_ids": {"sub1": ""}}), "sub_ids"),
        (json!({"agreement_id": "not-an-id"}), "agreement_id"),
    ];
    for (extra, field) in cases {
        let mut body = json!({"agreement_id": agreement["id"]});
        merge(&mut body, extra.clone());
        let problem = assert_problem(
            app.post("/v1/links", &app.admin_token, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(invalid_fields(&problem), vec![field.to_owned()], "{extra}");
    }
    let res = app
        .post(
            "/v1/links",
            &app.admin_token,
            &json!({"agreement_id": "agr_zzzzz"}),
        )
        .await;
    assert_problem(res, StatusCode::NOT_FOUND).await;
}
