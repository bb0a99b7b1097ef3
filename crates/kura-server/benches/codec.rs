//! The AWS door's request codec (awsJson 1.1) without the server around it: a body and its
//! `X-Amz-Target` decoded into the typed operation, and the answer encoded back, for the
//! operations clients call most. Run with `cargo bench -p kura-server --bench codec`.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use kura_core::Timestamp;
use kura_core::model::{RotationConfig, RotationRun, SecretRecord, Tag};
use kura_server::http::bench_support::{decode, encode};
use kura_server::service::Outcome;
use kura_server::service::types::{
    GetSecretValueResponse, Plain, SecretDescription, SecretListPage, SecretVersionResponse,
};

const ARN: &str = "arn:aws:secretsmanager:us-east-1:000000000000:secret:bench-00000100-AbCdEf";
const VERSION: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
/// A 64-character value, as kura-bench stores.
const VALUE: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const CREATED: Timestamp = Timestamp(1_795_000_000_000);

/// Builds an answer afresh: encoding consumes it.
type MakeAnswer = fn() -> Outcome;

fn value_answer() -> Outcome {
    Outcome::GetSecretValue(GetSecretValueResponse {
        arn: ARN.into(),
        name: "bench-00000100".into(),
        version_id: VERSION.into(),
        value: Plain::text(VALUE),
        version_stages: vec!["AWSCURRENT".into()],
        created: CREATED,
    })
}

fn put_answer() -> Outcome {
    Outcome::PutSecretValue(SecretVersionResponse {
        arn: ARN.into(),
        name: "bench-00000100".into(),
        version_id: Some(VERSION.into()),
        version_stages: Some(vec!["AWSCURRENT".into()]),
    })
}

/// A page of 100 secrets, each tagged and with a current and previous version.
fn list_answer() -> Outcome {
    let secrets = (0..100)
        .map(|i| {
            let name = format!("bench-{:08}", i * 100);
            SecretDescription {
                secret: Box::new(SecretRecord {
                    id: i,
                    arn: format!(
                        "arn:aws:secretsmanager:us-east-1:000000000000:secret:{name}-AbCdEf"
                    ),
                    name,
                    description: Some("a benchmark secret".into()),
                    kms_key_id: None,
                    created_at: CREATED,
                    changed_at: CREATED.plus_days(1),
                    accessed_at: Some(CREATED.plus_days(2).start_of_day()),
                    deleted_at: None,
                    purge_at: None,
                    resource_policy: None,
                    tags: vec![
                        Tag {
                            key: "team".into(),
                            value: "payments".into(),
                        },
                        Tag {
                            key: "env".into(),
                            value: "prod".into(),
                        },
                    ],
                    tagged: true,
                    rotation: RotationConfig::default(),
                    run: RotationRun::default(),
                    expires_at: None,
                    expiry_notice_at: None,
                }),
                stages: BTreeMap::from([
                    ("AWSCURRENT".to_string(), VERSION.to_string()),
                    (
                        "AWSPREVIOUS".to_string(),
                        "7c9e6679-7425-40de-944b-e07fc1f90ae7".to_string(),
                    ),
                ]),
                now: Timestamp(0),
            }
        })
        .collect();
    Outcome::ListSecrets(SecretListPage {
        secrets,
        next_token: Some("eyJvZmZzZXQiOjEwMH0".into()),
    })
}

fn bench(c: &mut Criterion) {
    let get = format!(r#"{{"SecretId":"{ARN}"}}"#);
    let put = format!(
        r#"{{"SecretId":"{ARN}","SecretString":"{VALUE}","ClientRequestToken":"{VERSION}"}}"#
    );
    let list =
        r#"{"MaxResults":100,"Filters":[{"Key":"name","Values":["bench-"]}],"SortOrder":"asc"}"#;
    let requests = [
        ("GetSecretValue", get.as_bytes()),
        ("PutSecretValue", put.as_bytes()),
        ("ListSecrets", list.as_bytes()),
    ];
    // Each case decodes to the operation it names, or the figures would be of an error path.
    for (op, body) in requests {
        let decoded = decode(&format!("secretsmanager.{op}"), body).expect("decodes");
        assert_eq!(decoded.name(), op);
    }
    let mut g = c.benchmark_group("codec");
    for (op, body) in requests {
        let target = format!("secretsmanager.{op}");
        g.bench_function(format!("decode/{op}"), |b| {
            b.iter(|| decode(&target, black_box(body)))
        });
    }
    // The answer is consumed by encoding it; building it is outside the measurement.
    let answers: [(&str, MakeAnswer); 3] = [
        ("GetSecretValue", value_answer),
        ("PutSecretValue", put_answer),
        ("ListSecrets_100", list_answer),
    ];
    for (op, make) in answers {
        encode(make()).expect("encodes");
        g.bench_function(format!("encode/{op}"), |b| {
            b.iter_batched(make, encode, BatchSize::SmallInput)
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
