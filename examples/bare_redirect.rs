//! The yardstick of `benches/redirect_load.sh`: actix-web answering the same
//! 302 as mitra's `GET /l/{code}` (the same route shape, status and headers,
//! a Location of the same length) and doing nothing else: no signature, no
//! cache, no click log, no metrics, no logging. What this serves on one
//! core is the most any redirect built on actix-web could serve there.
//!
//!     BARE_LISTEN=127.0.0.1:18180 cargo run --release --example bare_redirect

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{App, HttpResponse, HttpServer, web};

/// As long as mitra's answer for the bench's link: its destination, its
/// sub id and a 33-character click id.
const LOCATION: &str =
    "https://shop.example/p?x=1&sub1=bench&mitra_click=0123456789abcdefghijABCDEFGHIJxyz";

async fn redirect() -> HttpResponse {
    let mut res = HttpResponse::new(StatusCode::FOUND);
    let headers = res.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static(LOCATION));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::var("BARE_LISTEN").unwrap_or_else(|_| "127.0.0.1:18180".into());
    let workers = std::env::var("BARE_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    println!("bare redirect on {listen}, {workers} worker(s)");
    HttpServer::new(|| App::new().service(web::scope("/l").default_service(web::to(redirect))))
        .workers(workers)
        .bind(listen)?
        .run()
        .await
}
