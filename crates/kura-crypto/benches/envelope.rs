//! Envelope encryption: sealing a value (fresh data key, wrapped by the key-encryption key),
//! opening it (unwrap, then decrypt) and a key rotation's re-wrap of a data key. Run with
//! `cargo bench -p kura-crypto --bench envelope`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kura_crypto::{Keyring, RootKey};

const KEY: &str = "alias/kura/default";
/// What the server binds as associated data: the secret's ARN and the version id.
const CONTEXT: &[u8] =
    b"arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/db/password-AbCdEf\n0f8fad5b-d9cb-469f-a165-70867728950e";

fn bench(c: &mut Criterion) {
    let keyring = Keyring::new(RootKey::generate().expect("root key"));
    let wrapped = keyring.new_kek(KEY, 1).expect("kek v1");
    keyring.load_kek(KEY, 1, &wrapped).expect("load v1");

    let mut g = c.benchmark_group("envelope");
    for size in [64usize, 4096] {
        let value = vec![0x5a_u8; size];
        let sealed = keyring.seal(KEY, CONTEXT, &value).expect("seal");
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("seal", size), &value, |b, v| {
            b.iter(|| keyring.seal(KEY, CONTEXT, black_box(v)))
        });
        g.bench_with_input(BenchmarkId::new("open", size), &sealed, |b, s| {
            b.iter(|| {
                keyring.open(
                    KEY,
                    s.key_version,
                    CONTEXT,
                    black_box(&s.ciphertext),
                    &s.wrapped_key,
                )
            })
        });
    }
    g.finish();

    // A value sealed under version 1, re-wrapped under version 2 after a rotation.
    let old = keyring.seal(KEY, CONTEXT, &[0x5a; 64]).expect("seal");
    let wrapped = keyring.new_kek(KEY, 2).expect("kek v2");
    keyring.load_kek(KEY, 2, &wrapped).expect("load v2");
    let (_, version) = keyring
        .rewrap_data_key(KEY, old.key_version, CONTEXT, &old.wrapped_key)
        .expect("rewrap");
    assert_eq!(version, 2, "the data key moves to the current version");
    c.bench_function("envelope/rewrap_data_key", |b| {
        b.iter(|| {
            keyring.rewrap_data_key(KEY, old.key_version, CONTEXT, black_box(&old.wrapped_key))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
