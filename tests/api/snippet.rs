//! The landing-page snippet, GET /mitra.js: served with a version and
//! caching headers, and run in Debian's headless chromium (driven by
//! playwright-core from tests/js/snippet.cjs) through a shop this test
//! serves: a shopper follows a partner's link, browses two pages, checks
//! out, and the order the shop receives carries the click id, which books.

use crate::helpers::*;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

#[tokio::test]
async fn the_snippet_is_served_versioned_and_cacheable() {
    let app = spawn_app().await;
    let version = mitra::http::snippet_version();
    assert_eq!(version.len(), 12);
    let res = app.client.get(app.url("/mitra.js")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(h["cache-control"], "public, max-age=300");
    assert_eq!(h["etag"].to_str().unwrap(), format!("\"{version}\""));
    let body = res.text().await.unwrap();
    assert!(body.starts_with("/* mitra.js"), "{}", &body[..40]);
    assert!(body.len() < 8 * 1024, "small: {} bytes", body.len());

    let res = app
        .client
        .get(app.url(&format!("/mitra.js?v={version}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let res = app
        .client
        .get(app.url("/mitra.js"))
        .header("if-none-match", format!("\"{version}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(res.text().await.unwrap(), "");
}

/// What the test shop received: checkout orders and Shopify cart updates.
#[derive(Default)]
struct Received {
    /// (path, form body) of each order, in order.
    orders: Vec<(String, String)>,
    /// (page that sent it, JSON body) of each cart update.
    carts: Vec<(String, Value)>,
}

struct Shop {
    port: u16,
    received: Arc<Mutex<Received>>,
    handle: actix_web::dev::ServerHandle,
}

const SHOP_HOST: &str = "shop.example";

fn page(mitra: &str, mode: &str, title: &str, next: &str, form: bool) -> HttpResponse {
    let consent = if mode == "wait" {
        r#" data-consent="wait""#
    } else {
        ""
    };
    let form = if form {
        format!(
            r#"<form class="checkout" method="post" action="/{mode}/order">
<input name="email" type="email"><button type="submit">Bayar</button></form>"#
        )
    } else {
        String::new()
    };
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<script>window.Shopify = {{shop: "batik-shop.myshopify.com"}};</script>
<script src="{mitra}/mitra.js?v={version}" data-days="30" data-coupon-param="coupon"{consent} async></script>
</head><body><h1>{title}</h1>
<a class="next" href="/{mode}/{next}">Next</a> <a class="checkout" href="/{mode}/checkout">Checkout</a>
{form}</body></html>"#,
        version = mitra::http::snippet_version()
    ))
}

async fn start_shop(mitra: String) -> Shop {
    let received = Arc::new(Mutex::new(Received::default()));
    let state = web::Data::new((mitra, received.clone()));
    type State = web::Data<(String, Arc<Mutex<Received>>)>;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route(
                "/{mode}/{page:.*}",
                web::get().to(|path: web::Path<(String, String)>, s: State| async move {
                    let (mode, name) = path.into_inner();
                    let m = &s.0;
                    match name.as_str() {
                        "landing" => page(m, &mode, "Batik Shop", "products/scarf", false),
                        "products/scarf" => {
                            page(m, &mode, "Batik Tulis Scarf", "products/sarong", false)
                        }
                        "products/sarong" => page(m, &mode, "Indigo Sarong", "landing", false),
                        "checkout" => page(m, &mode, "Checkout", "landing", true),
                        _ => HttpResponse::NotFound().finish(),
                    }
                }),
            )
            .route(
                "/cart/update.js",
                web::post().to(|req: HttpRequest, body: web::Bytes, s: State| async move {
                    let from = req
                        .headers()
                        .get("referer")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    s.1.lock().unwrap().carts.push((from, json));
                    HttpResponse::Ok().json(json!({"token": "c1-test", "item_count": 0}))
                }),
            )
            .route(
                "/{mode}/order",
                web::post().to(|req: HttpRequest, body: web::Bytes, s: State| async move {
                    let form = String::from_utf8_lossy(&body).into_owned();
                    s.1.lock()
                        .unwrap()
                        .orders
                        .push((req.path().to_owned(), form));
                    HttpResponse::Ok()
                        .content_type("text/html")
                        .body("<p>Terima kasih!</p>")
                }),
            )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    Shop {
        port,
        received,
        handle,
    }
}

/// The form fields of a urlencoded body.
fn fields(form: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(form.as_bytes())
        .into_owned()
        .collect()
}

fn js_tool(name: &str) -> (std::path::PathBuf, String) {
    let modules = std::env::var("MITRA_JS_MODULES").unwrap_or_else(|_| {
        let dir = std::env::var("MITRA_DEV_DIR").unwrap_or_else(|_| {
            format!(
                "/tmp/mitra-dev-{}",
                std::env::var("USER").unwrap_or_else(|_| "root".into())
            )
        });
        format!("{dir}/js/node_modules")
    });
    assert!(
        std::path::Path::new(&modules)
            .join("playwright-core")
            .is_dir(),
        "no npm packages in {modules}: run scripts/test, which installs chromium, node and them"
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/js")
        .join(name);
    (script, modules)
}

/// Runs a node tool of tests/js with `args`, returning what it printed.
pub fn run_js(name: &str, args: &[&str], stdin: Option<&[u8]>) -> String {
    use std::io::Write;
    let (script, modules) = js_tool(name);
    let mut child = std::process::Command::new("node")
        .arg(script)
        .args(args)
        .env("MITRA_JS_MODULES", modules)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node runs (scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.unwrap_or_default())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn in_chromium_the_click_a_shopper_landed_with_reaches_the_order_and_books() {
    let app = spawn_app().await;
    let mitra = app.address.clone();
    let shop = start_shop(mitra.clone()).await;
    let base = format!("http://{SHOP_HOST}:{}", shop.port);
    let program = app
        .create_program_with(json!({
            "landing_domains": [SHOP_HOST],
            "default_url": format!("{base}/shop/landing"),
        }))
        .await;
    let partner = app.create_partner("Ayu").await;
    let agreement = app
        .create_agreement(&program, &[(&partner, 10000)], json!({}))
        .await;
    let link = app
        .create_link(
            &agreement,
            json!({"destination_url": format!("{base}/shop/landing?coupon=AYU10")}),
        )
        .await;
    let waiting = app
        .create_link(
            &agreement,
            json!({"destination_url": format!("{base}/wait/landing")}),
        )
        .await;
    let link_url = |l: &Value| format!("{mitra}{}", TestApp::link_path(l));
    let plan = json!({
        "chromium": std::env::var("MITRA_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
        "shop_host": SHOP_HOST,
        "scenarios": [
            {"name": "plain", "link": link_url(&link), "consent": "none"},
            {"name": "consent given", "link": link_url(&waiting), "consent": "grant"},
            {"name": "consent refused", "link": link_url(&waiting), "consent": "refuse"},
        ],
    });
    let started = chrono::Utc::now().timestamp();
    let plan = plan.to_string();
    let out = tokio::task::spawn_blocking(move || run_js("snippet.cjs", &[&plan], None))
        .await
        .unwrap();
    let seen: Vec<Value> = serde_json::from_str(&out).unwrap();
    let received = std::mem::take(&mut *shop.received.lock().unwrap());
    shop.handle.stop(true).await;

    // The click ids the redirect gave each landing.
    let landed: Vec<String> = seen
        .iter()
        .map(|scenario| {
            let url = url::Url::parse(s(&scenario["landing_url"])).unwrap();
            url.query_pairs()
                .find(|(k, _)| k == "mitra_click")
                .map(|(_, v)| v.into_owned())
                .unwrap()
        })
        .collect();
    assert_eq!(landed[0].len(), 33);

    // Plain: stored at once, for 30 days, and in the order with the coupon.
    let plain = &seen[0];
    assert_eq!(plain["browsed_to"], "/shop/products/sarong");
    assert_eq!(plain["click_id_while_browsing"], landed[0].as_str());
    assert_eq!(plain["after_order"], "Terima kasih!");
    let cookies = plain["cookies"].as_array().unwrap();
    let mut cookies = cookies.clone();
    cookies.sort_by(|a, b| s(&a["name"]).cmp(s(&b["name"])));
    let names: Vec<&str> = cookies.iter().map(|c| s(&c["name"])).collect();
    assert_eq!(names, ["mitra_click", "mitra_coupon"]);
    assert_eq!(cookies[0]["value"], landed[0].as_str());
    assert_eq!(cookies[1]["value"], "AYU10");
    for c in &cookies {
        assert_eq!(c["path"], "/");
        assert_eq!(c["sameSite"], "Lax");
        let lifetime = c["expires"].as_i64().unwrap() - started;
        assert!(
            (30 * 86400 - 5..=30 * 86400 + 120).contains(&lifetime),
            "{c}"
        );
    }
    assert_eq!(received.orders[0].0, "/shop/order");
    assert_eq!(
        fields(&received.orders[0].1),
        [
            ("email".to_owned(), "siti.rahma@example.com".to_owned()),
            ("mitra_click".to_owned(), landed[0].clone()),
            ("mitra_coupon".to_owned(), "AYU10".to_owned()),
        ]
    );

    // Consent given: nothing stored before it, everything after.
    let given = &seen[1];
    assert_eq!(given["cookie_on_landing"], "");
    assert_eq!(
        given["click_id_on_landing"],
        landed[1].as_str(),
        "held in memory"
    );
    assert_eq!(given["click_id_while_browsing"], landed[1].as_str());
    let mut names: Vec<&str> = given["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| s(&c["name"]))
        .collect();
    names.sort();
    assert_eq!(names, ["mitra_click", "mitra_consent"]);
    assert_eq!(
        fields(&received.orders[1].1),
        [
            ("email".to_owned(), "siti.rahma@example.com".to_owned()),
            ("mitra_click".to_owned(), landed[1].clone()),
        ]
    );

    // Consent refused: nothing stored, nothing in the order, no cart update.
    let refused = &seen[2];
    assert_eq!(refused["cookie_on_landing"], "");
    assert_eq!(refused["click_id_while_browsing"], Value::Null);
    assert_eq!(refused["cookies"], json!([]));
    assert_eq!(
        fields(&received.orders[2].1),
        [("email".to_owned(), "siti.rahma@example.com".to_owned())]
    );
    assert_eq!(received.orders.len(), 3);

    // Shopify cart attributes: the plain and the consenting shopper's, never the refusing one's.
    assert!(!received.carts.is_empty());
    for (from, body) in &received.carts {
        let expected = if from.contains("/shop/") {
            json!({"attributes": {"_mitra_click": landed[0], "_mitra_coupon": "AYU10"}})
        } else {
            json!({"attributes": {"_mitra_click": landed[1]}})
        };
        assert_eq!(body, &expected, "from {from}");
    }
    assert!(
        received
            .carts
            .iter()
            .any(|(from, _)| from.contains("/wait/"))
    );

    // The shop reports the order with the click id it received: it books.
    let order = fields(&received.orders[0].1);
    let click = &order[1].1;
    let res = app
        .post_conversion(
            &program,
            &json!({"order_id": "SHOP-1", "event": "sale", "amount_minor": 20000,
                    "currency": "EUR", "click_id": click}),
        )
        .await;
    assert_status(res, StatusCode::ACCEPTED).await;
    app.attribute().await;
    let booked = app.conversion(&program, "SHOP-1").await;
    assert_eq!(booked["status"], "attributed");
    assert_eq!(booked["attributed_via"], "click");
    assert_eq!(booked["link_id"], link["id"]);
    assert_eq!(booked["commissions"][0]["amount_minor"], 2000);
}
