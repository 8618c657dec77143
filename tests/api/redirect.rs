//! GET /l/{code}: verify, redirect, log the click.

use crate::helpers::*;
use mitra::domain::LinkId;
use mitra::domain::click_id;
use mitra::startup::Roles;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};
use url::Url;

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";

async fn follow(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header("user-agent", BROWSER)
        .send()
        .await
        .unwrap()
}

fn location(res: &reqwest::Response) -> Url {
    Url::parse(res.headers()["location"].to_str().unwrap()).unwrap()
}

#[tokio::test]
async fn a_link_redirects_with_a_signed_click_id_keeping_query_and_fragment() {
    let app = spawn_app().await;
    let f = fixture(
        &app,
        json!({"destination_url": "https://shop.example/batik?color=blue&size=m#reviews",
               "sub_ids": {"sub1": "ig-story", "sub2": "nov"}}),
    )
    .await;
    let res = follow(&app, &TestApp::link_path(&f.link)).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let to = location(&res);
    assert_eq!(to.host_str(), Some("shop.example"));
    assert_eq!(to.path(), "/batik");
    assert_eq!(to.fragment(), Some("reviews"));
    let pairs: Vec<(String, String)> = to
        .query_pairs()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    assert_eq!(
        &pairs[..2],
        &[("color".into(), "blue".into()), ("size".into(), "m".into())]
    );
    assert!(pairs.contains(&("sub1".into(), "ig-story".into())));
    assert!(pairs.contains(&("sub2".into(), "nov".into())));
    let click = pairs.iter().find(|(k, _)| k == "mitra_click").unwrap();
    let decoded =
        click_id::verify(&app.settings.link_keys, &click.1).expect("the click id verifies");
    assert_eq!(decoded.link, LinkId::parse(s(&f.link["id"])).unwrap());

    let events = app.click_events().await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.click_id, click.1);
    assert_eq!(e.link_id, decoded.link.get());
    assert_eq!(e.user_agent.as_deref(), Some(BROWSER));
    assert_eq!(e.bot, None);
    assert_eq!(e.sub_ids["sub1"], "ig-story");
    assert_eq!(e.ip_hash.len(), 32);
    assert!(!e.ip_hash.contains("127.0.0.1"));
}

#[tokio::test]
async fn a_link_without_destination_lands_on_the_program_default() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let res = follow(&app, &TestApp::link_path(&f.link)).await;
    let to = location(&res);
    assert_eq!(
        format!("{}://{}{}", to.scheme(), to.host_str().unwrap(), to.path()),
        "https://shop.example/"
    );
    assert!(to.query_pairs().any(|(k, _)| k == "mitra_click"));
}

#[tokio::test]
async fn a_destination_that_carries_a_click_id_gets_ours_instead() {
    let app = spawn_app().await;
    let f = fixture(
        &app,
        json!({"destination_url": "https://shop.example/?mitra_click=forged&a=1"}),
    )
    .await;
    let to = location(&follow(&app, &TestApp::link_path(&f.link)).await);
    let clicks: Vec<String> = to
        .query_pairs()
        .filter(|(k, _)| k == "mitra_click")
        .map(|(_, v)| v.into())
        .collect();
    assert_eq!(clicks.len(), 1);
    let ours = mitra::domain::click_id::verify(&app.settings.link_keys, &clicks[0])
        .expect("the click id is one we issued");
    assert_eq!(ours.link.to_string(), s(&f.link["id"]));
    assert!(to.query_pairs().any(|(k, v)| k == "a" && v == "1"));
}

#[tokio::test]
async fn head_redirects_too_and_is_flagged_as_a_bot() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let res = app
        .client
        .request(Method::HEAD, app.url(&TestApp::link_path(&f.link)))
        .header("user-agent", BROWSER)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let events = app.click_events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].bot,
        Some(mitra::clicks::bots::BotReason::HeadRequest)
    );
}

#[tokio::test]
async fn tampered_codes_answer_404_and_log_nothing() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let code = s(&f.link["code"]).to_owned();
    let mut flipped = code.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'a' { b'b' } else { b'a' };
    let flipped = String::from_utf8(flipped).unwrap();
    let other_key = {
        let ring = mitra::domain::signing::KeyRing::parse(&secrecy::SecretString::from(
            "1:another-key-another-key-another".to_owned(),
        ))
        .unwrap();
        mitra::domain::link_code::sign(&ring, LinkId::parse(s(&f.link["id"])).unwrap()).unwrap()
    };
    let cases = [
        ("altered last character", flipped),
        ("truncated", code[..code.len() - 1].to_owned()),
        ("padded with a leading zero", format!("0{code}")),
        ("extra character", format!("{code}a")),
        ("signed with an unknown key", other_key),
        ("not base62", format!("{}-", &code[..code.len() - 1])),
        ("empty-ish", "0".to_owned()),
        ("far too long", "a".repeat(64)),
        ("percent-encoded NUL", format!("{code}%00")),
    ];
    for (what, bad) in cases {
        let res = follow(&app, &format!("/l/{bad}")).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{what}: {bad}");
        assert_problem(res, StatusCode::NOT_FOUND).await;
    }
    // A code for a link id that was never issued, correctly signed.
    let unissued =
        mitra::domain::link_code::sign(&app.settings.link_keys, LinkId::from_db(999_999)).unwrap();
    assert_problem(
        follow(&app, &format!("/l/{unissued}")).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(app.click_events().await.is_empty(), "nothing was logged");
    let m = app.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"mitra_clicks_total{outcome="invalid_code",program="unknown"}"#
        ),
        9.0
    );
    assert_eq!(
        metric(
            &m,
            r#"mitra_clicks_total{outcome="unknown_link",program="unknown"}"#
        ),
        1.0
    );
}

#[tokio::test]
async fn deep_links_are_honoured_only_on_the_programs_landing_domains() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let base = TestApp::link_path(&f.link);
    let allowed = [
        "https://shop.example/sale?x=1",
        "http://www.shop.example/",
        "https://SHOP.example/Case",
    ];
    for to in allowed {
        let path = format!("{base}?to={}", urlencode(to));
        let res = follow(&app, &path).await;
        assert_eq!(res.status(), StatusCode::FOUND, "{to}");
        let loc = location(&res);
        assert!(loc.host_str().unwrap().ends_with("shop.example"), "{to}");
    }
    let refused = [
        ("another host", "https://evil.example/"),
        ("a subdomain not listed", "https://evil.shop.example/"),
        ("a suffix trick", "https://shop.example.evil.example/"),
        ("user-info", "https://shop.example@evil.example/"),
        (
            "user-info with password",
            "https://shop.example:pw@evil.example/",
        ),
        ("backslash", "https://evil.example\\@shop.example/"),
        ("backslash host", "https:\\\\evil.example/"),
        ("protocol-relative", "//evil.example/"),
        ("scheme-less", "evil.example/"),
        ("javascript", "javascript:alert(document.cookie)"),
        ("data", "data:text/html,<script>alert(1)</script>"),
        ("ftp", "ftp://shop.example/"),
        ("percent-encoded dot", "https://evil%2Eexample/"),
        ("percent-encoded at", "https://shop.example%40evil.example/"),
        (
            "percent-encoded slash",
            "https://evil.example%2F.shop.example/",
        ),
        ("tab in host", "https://shop.example\t.evil.example/"),
        ("newline", "https://shop.example/\r\nSet-Cookie:x=1"),
        ("relative path", "/local/path"),
        ("ip literal", "http://127.0.0.1/"),
        ("port confusion", "https://shop.example:443@evil.example/"),
    ];
    for (what, to) in refused {
        let path = format!("{base}?to={}", urlencode(to));
        let res = follow(&app, &path).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{what}: {to}");
    }
    // Two destinations are ambiguous.
    let two = format!(
        "{base}?to={}&to={}",
        urlencode("https://shop.example/"),
        urlencode("https://evil.example/")
    );
    assert_eq!(follow(&app, &two).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.click_events().await.len(),
        allowed.len(),
        "only the honoured ones were logged"
    );
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn a_disabled_link_stops_redirecting_on_every_instance_within_5_s() {
    let a = spawn_app().await;
    let f = fixture(&a, json!({})).await;
    // A second instance on the same database, with the link already cached.
    let mut settings = a.settings.clone();
    settings.listen = "127.0.0.1:0".parse().unwrap();
    let b = start(settings, a.database.clone(), Roles::API).await;
    let path = TestApp::link_path(&f.link);
    assert_eq!(follow(&b, &path).await.status(), StatusCode::FOUND);

    let res = a
        .request(
            Method::DELETE,
            &format!("/v1/links/{}", s(&f.link["id"])),
            Some(&a.admin_token),
            None,
        )
        .await;
    let disabled = assert_status(res, StatusCode::OK).await;
    assert_eq!(disabled["disabled"], true);
    assert_eq!(
        follow(&a, &path).await.status(),
        StatusCode::NOT_FOUND,
        "at once where it was disabled"
    );
    let since = Instant::now();
    loop {
        if follow(&b, &path).await.status() == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "the other instance still redirects after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn only_the_issuing_partner_program_or_admin_may_disable_a_link() {
    let app = spawn_app().await;
    let f = fixture(&app, json!({})).await;
    let other = app.create_program().await;
    let path = format!("/v1/links/{}", s(&f.link["id"]));
    // Another program: no such link.
    let res = app
        .request(Method::DELETE, &path, Some(s(&other["api_key"])), None)
        .await;
    assert_problem(res, StatusCode::NOT_FOUND).await;
    // The partner sees the link (it is in the agreement) but did not issue it.
    let res = app
        .request(Method::DELETE, &path, Some(s(&f.partner["api_key"])), None)
        .await;
    assert_problem(res, StatusCode::FORBIDDEN).await;
    let res = app
        .request(Method::DELETE, &path, Some(s(&f.program["api_key"])), None)
        .await;
    assert_status(res, StatusCode::OK).await;
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let untrusting = spawn_app().await;
    let f = fixture(&untrusting, json!({})).await;
    for ip in ["203.0.113.1", "203.0.113.2"] {
        untrusting
            .client
            .get(untrusting.url(&TestApp::link_path(&f.link)))
            .header("user-agent", BROWSER)
            .header("x-forwarded-for", ip)
            .send()
            .await
            .unwrap();
    }
    let events = untrusting.click_events().await;
    assert_eq!(
        events[0].ip_hash, events[1].ip_hash,
        "a stranger's header is ignored"
    );

    let trusting = spawn_app_with(Roles::API, &[("MITRA_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let f = fixture(&trusting, json!({})).await;
    for ip in ["203.0.113.1", "203.0.113.2"] {
        trusting
            .client
            .get(trusting.url(&TestApp::link_path(&f.link)))
            .header("user-agent", BROWSER)
            .header("x-forwarded-for", ip)
            .send()
            .await
            .unwrap();
    }
    let events = trusting.click_events().await;
    assert_ne!(
        events[0].ip_hash, events[1].ip_hash,
        "the proxy's header names the client"
    );
}

#[tokio::test]
async fn a_change_in_one_program_keeps_the_other_programs_links_cached() {
    let app = spawn_app().await;
    let a = fixture(&app, json!({})).await;
    let b = fixture(&app, json!({})).await;
    // Both programs were set up an hour ago, before the poll's overlap.
    for statement in [
        "update programs set updated_at = now() - interval '1 hour'",
        "update agreements set updated_at = now() - interval '1 hour'",
        "update enrollments set updated_at = now() - interval '1 hour'",
        "update links set updated_at = now() - interval '1 hour'",
    ] {
        sqlx::query(statement).execute(&app.db).await.unwrap();
    }
    let cache = &app.state.link_cache;
    let since = cache.poll_changes(None).await.unwrap();
    let cached = |f: &Fixture| {
        let code = mitra::domain::link_code::decode(s(&f.link["code"])).unwrap();
        cache.verified(&code).is_some()
    };
    for f in [&a, &b] {
        let res = follow(&app, &TestApp::link_path(&f.link)).await;
        assert_eq!(res.status(), StatusCode::FOUND);
    }
    assert!(
        cached(&a) && cached(&b),
        "both links cached by their redirects"
    );

    // A partner is invited to program A: a membership change there.
    let newcomer = app.create_partner("Budi").await;
    let res = app
        .request(
            Method::POST,
            &format!("/v1/programs/{}/enrollments", s(&a.program["id"])),
            Some(&app.admin_token),
            Some(&json!({"partner_id": newcomer["id"]})),
        )
        .await;
    assert_status(res, StatusCode::CREATED).await;
    cache.poll_changes(Some(since)).await.unwrap();
    assert!(!cached(&a), "program A's link is read again");
    assert!(cached(&b), "program B's link stays cached");
    // And A's link, read again, still redirects.
    let res = follow(&app, &TestApp::link_path(&a.link)).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert!(cached(&a));
}
