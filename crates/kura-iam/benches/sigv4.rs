//! SigV4 verification of a GetSecretValue request as the AWS SDK for Rust sends it: the work
//! kura does per request before anything else (see `kura_server::http::auth`). Run with
//! `cargo bench -p kura-iam --bench sigv4`.

use std::hint::black_box;

use chrono::{DateTime, Duration, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use kura_iam::sigv4::{self, Request, SigningKeyCache};

const ACCESS_KEY_ID: &str = "AKIAKURABENCH0000001";
const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const REGION: &str = "us-east-1";
const SERVICE: &str = "secretsmanager";
const AMZ_DATE: &str = "20261130T200000Z";
const BODY: &[u8] = br#"{"SecretId":"arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/db/password-AbCdEf"}"#;

/// The headers the SDK signs (all but `user-agent`), in the order it sends them.
fn signed_headers(content_length: &str) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/x-amz-json-1.1".into()),
        ("x-amz-target", "secretsmanager.GetSecretValue".into()),
        ("content-length", content_length.into()),
        (
            "x-amz-user-agent",
            "aws-sdk-rust/1.3.9 ua/2.1 api/secretsmanager/1.125.0 os/linux lang/rust/1.94.0".into(),
        ),
        ("x-amz-date", AMZ_DATE.into()),
        (
            "amz-sdk-invocation-id",
            "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
        ),
        ("amz-sdk-request", "attempt=1; max=3".into()),
        ("host", "127.0.0.1:8443".into()),
    ]
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-30T20:00:01Z")
        .expect("a fixed, valid time")
        .with_timezone(&Utc)
}

fn bench(c: &mut Criterion) {
    let length = BODY.len().to_string();
    let owned = signed_headers(&length);
    let to_sign: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let unsigned = Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &to_sign,
        body: BODY,
    };
    let authorization = sigv4::authorization_header(
        &unsigned,
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        REGION,
        SERVICE,
        AMZ_DATE,
    )
    .expect("the request signs");
    // What arrives: the signed headers, the unsigned user agent and the signature.
    let mut headers = to_sign.clone();
    headers.push(("user-agent", "aws-sdk-rust/1.3.9 os/linux lang/rust/1.94.0"));
    headers.push(("authorization", &authorization));
    let req = Request {
        headers: &headers,
        ..unsigned
    };
    let skew = Duration::minutes(5);
    let now = now();
    let auth = sigv4::parse_authorization(&authorization).expect("the header parses");
    let key = sigv4::derive_signing_key(SECRET_ACCESS_KEY, &auth.date, REGION, SERVICE);
    sigv4::verify(&req, &auth, &key, SERVICE, now, skew).expect("the signature verifies");
    let cache = SigningKeyCache::default();
    cache.insert(
        ACCESS_KEY_ID,
        &auth.date,
        REGION,
        SERVICE,
        std::sync::Arc::new(key),
    );

    let mut g = c.benchmark_group("sigv4");
    g.bench_function("parse_authorization", |b| {
        b.iter(|| sigv4::parse_authorization(black_box(&authorization)))
    });
    g.bench_function("canonical_request", |b| {
        b.iter(|| sigv4::canonical_request(black_box(&req), &auth.signed_headers))
    });
    let creq = sigv4::canonical_request(&req, &auth.signed_headers).expect("headers present");
    let scope = auth.scope();
    g.bench_function("string_to_sign", |b| {
        b.iter(|| sigv4::string_to_sign(AMZ_DATE, &scope, black_box(&creq)))
    });
    g.bench_function("derive_signing_key", |b| {
        b.iter(|| {
            sigv4::derive_signing_key(black_box(SECRET_ACCESS_KEY), &auth.date, REGION, SERVICE)
        })
    });
    g.bench_function("signing_key_cache_hit", |b| {
        b.iter(|| cache.get(black_box(ACCESS_KEY_ID), &auth.date, REGION, SERVICE))
    });
    // A whole verification as the server does it: parse the header, find the key, check.
    g.bench_function("verify_get_secret_value/key_cached", |b| {
        b.iter(|| {
            let auth = sigv4::parse_authorization(black_box(&authorization))?;
            let key = cache
                .get(&auth.access_key_id, &auth.date, &auth.region, &auth.service)
                .expect("cached");
            sigv4::verify(&req, &auth, &key, SERVICE, now, skew)
        })
    });
    g.bench_function("verify_get_secret_value/key_derived", |b| {
        b.iter(|| {
            let auth = sigv4::parse_authorization(black_box(&authorization))?;
            let key = sigv4::derive_signing_key(
                SECRET_ACCESS_KEY,
                &auth.date,
                &auth.region,
                &auth.service,
            );
            sigv4::verify(&req, &auth, &key, SERVICE, now, skew)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
