//! Link codes and click ids beside a bare HMAC-SHA256 of the same bytes, in
//! the same run: the signing schemes should cost little more than the MAC.
//!
//!     cargo bench --bench codes

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use mitra::domain::LinkId;
use mitra::domain::click_id;
use mitra::domain::link_code as code;
use mitra::domain::signing::KeyRing;
use secrecy::SecretString;
use sha2::Sha256;
use std::hint::black_box;

const SECRET: &str = "bench-secret-bench-secret-bench";

fn bare_hmac(message: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The same MAC from a keyed state cloned per message, as `SigningKey` does.
fn prekeyed_hmac(keyed: &Hmac<Sha256>, message: &[u8]) -> [u8; 32] {
    let mut mac = keyed.clone();
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn benches(c: &mut Criterion) {
    let keyed = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    let keys = KeyRing::parse(&SecretString::from(format!("1:{SECRET}"))).unwrap();
    let link = LinkId::from_db(123_456);
    let link_code = code::sign(&keys, link).unwrap();
    let now = 1_795_000_000_000;
    let click = click_id::issue(&keys, link, now, 42).unwrap();

    let mut g = c.benchmark_group("link_code");
    // A link code signs 9 bytes (key id + link id) under a 19-byte purpose.
    g.bench_function("bare_hmac_sha256_28_bytes", |b| {
        b.iter(|| bare_hmac(black_box(b"mitra/link-code/v1:\x01\0\0\0\0\0\x01\xe2\x40")))
    });
    g.bench_function("prekeyed_hmac_sha256_28_bytes", |b| {
        b.iter(|| {
            prekeyed_hmac(
                &keyed,
                black_box(b"mitra/link-code/v1:\x01\0\0\0\0\0\x01\xe2\x40"),
            )
        })
    });
    g.bench_function("sign", |b| b.iter(|| code::sign(&keys, black_box(link))));
    g.bench_function("verify", |b| {
        b.iter(|| code::verify(&keys, black_box(&link_code)))
    });
    g.bench_function("verify_forged", |b| {
        b.iter(|| code::verify(&keys, black_box("1TSABPIysdZyE")))
    });
    g.finish();

    let mut g = c.benchmark_group("click_id");
    // A click id signs a 16-byte payload under an 18-byte purpose.
    g.bench_function("bare_hmac_sha256_34_bytes", |b| {
        b.iter(|| bare_hmac(black_box(b"mitra/click-id/v1:0123456789abcdef")))
    });
    g.bench_function("prekeyed_hmac_sha256_34_bytes", |b| {
        b.iter(|| prekeyed_hmac(&keyed, black_box(b"mitra/click-id/v1:0123456789abcdef")))
    });
    g.bench_function("issue", |b| {
        b.iter(|| click_id::issue(&keys, black_box(link), now, 42))
    });
    g.bench_function("verify", |b| {
        b.iter(|| click_id::verify(&keys, black_box(click.as_str())))
    });
    g.finish();
}

criterion_group!(codes, benches);
criterion_main!(codes);
