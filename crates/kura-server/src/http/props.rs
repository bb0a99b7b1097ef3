//! Property tests for the awsJson codec: `decode` of every operation, and the `RequestFacts`
//! (what authorization and the audit record read) of what it decodes. Arbitrary bytes and
//! hostile JSON (deep nesting, huge numbers, unicode, long strings) never panic, refusals are
//! `SerializationException`s, and no refusal repeats what the body held (it may be a secret).
//! The default case count runs in CI; `PROPTEST_CASES=1000000` runs a long soak.

use kura_core::ErrorCode;
use proptest::prelude::*;

use super::aws::{OPERATIONS, decode};
use crate::service::{Family, Operation};

/// Appears in generated bodies; must never appear in an error message.
const MARK: &str = "S3CR3T-mark-Ω";

const FIELDS: &[&str] = &[
    "SecretId",
    "Name",
    "SecretString",
    "SecretBinary",
    "VersionId",
    "VersionStage",
    "ClientRequestToken",
    "Tags",
    "TagKeys",
    "Key",
    "Value",
    "Values",
    "Filters",
    "MaxResults",
    "NextToken",
    "RotationRules",
    "ScheduleExpression",
    "Duration",
    "AutomaticallyAfterDays",
    "RecoveryWindowInDays",
    "ForceDeleteWithoutRecovery",
    "UserName",
    "PolicyDocument",
    "ResourcePolicy",
    "Description",
    "KmsKeyId",
    "PasswordLength",
    "ExcludeCharacters",
    "SecretIdList",
    "AccessKeyId",
    "SecretAccessKey",
    "Status",
    "RotationLambdaARN",
    "MoveToVersionId",
    "RemoveFromVersionId",
    "Time",
    "Seconds",
    "Type",
    "Url",
    "Events",
];

/// JSON text, built as text so numbers can be what no `f64` holds.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        Just("1e999".to_string()),
        Just("-0".to_string()),
        Just("18446744073709551616".to_string()),
        Just("-9223372036854775809".to_string()),
        Just("0.000000000000000000000000000001".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| serde_json::to_string(&f).unwrap_or_else(|_| "0".into())),
        any::<String>().prop_map(|s| serde_json::Value::from(s).to_string()),
        ".{0,8}".prop_map(|s| serde_json::Value::from(format!("{s}{MARK}{s}")).to_string()),
        Just(serde_json::Value::from(MARK).to_string()),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(
                (
                    prop_oneof![
                        4 => prop::sample::select(FIELDS).prop_map(str::to_string),
                        1 => any::<String>(),
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|v| {
                let members: Vec<String> = v
                    .into_iter()
                    .map(|(k, v)| format!("{}:{v}", serde_json::Value::from(k)))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// A body: mostly JSON objects, some cut short or garbled, some arbitrary bytes, some deep.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => json_text().prop_map(String::into_bytes),
        1 => (json_text(), any::<prop::sample::Index>()).prop_map(|(t, i)| {
            let cut = i.index(t.len() + 1);
            t.into_bytes()[..cut].to_vec()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..256),
        1 => (1usize..20_000).prop_map(|n| format!("{{\"Tags\":{}{}}}", "[".repeat(n), "]".repeat(n)).into_bytes()),
        1 => (1usize..20_000).prop_map(|n| format!("{}\"{MARK}\"{}", "{\"a\":".repeat(n), "}".repeat(n)).into_bytes()),
    ]
}

/// Decodes `body` as every operation; a refusal must be a SerializationException that does not
/// repeat it, and what is decoded yields its facts without a panic.
fn check(body: &[u8]) -> Result<(), TestCaseError> {
    // The STS door's operation is not the awsJson codec's.
    for (family, name) in OPERATIONS.iter().filter(|(f, _)| *f != Family::Sts) {
        match decode(*family, name, body) {
            Err(e) => {
                prop_assert_eq!(e.code, ErrorCode::Serialization);
                prop_assert!(!e.message.contains(MARK), "{}", e.message);
                prop_assert!(!e.message.contains("S3CR3T"), "{}", e.message);
            }
            Ok(op) => {
                let _ = op.facts();
            }
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn request_decoding_never_panics_nor_repeats_the_body(body in body()) {
        check(&body)?;
    }

    /// The facts authorization reads are the fields the body named, whatever else it holds.
    #[test]
    fn request_facts_read_the_named_fields(
        secret_id in any::<String>(),
        stage in any::<String>(),
        other in json_text(),
    ) {
        let body = serde_json::json!({
            "SecretId": secret_id,
            "VersionStage": stage,
            "SecretString": MARK,
            "Unrelated": serde_json::from_str::<serde_json::Value>(&other).unwrap_or_default(),
        });
        let op = decode(Family::SecretsManager, "GetSecretValue", body.to_string().as_bytes())
            .map_err(|e| TestCaseError::fail(e.message))?;
        let facts = op.facts();
        prop_assert_eq!(facts.secret_id, Some(secret_id.as_str()));
        prop_assert_eq!(facts.version_stage, Some(stage.as_str()));
    }
}

/// Large adversarial bodies, once each: they finish (a hang is the failure) and are refused
/// or read without a panic.
#[test]
fn large_adversarial_bodies_finish() {
    let sm = Family::SecretsManager;
    let deep = format!("{}{}", "[".repeat(1_000_000), "]".repeat(1_000_000));
    assert!(decode(sm, "DescribeSecret", deep.as_bytes()).is_err());
    let long = format!(r#"{{"SecretId": "{}"}}"#, "é".repeat(500_000));
    let op = decode(sm, "DescribeSecret", long.as_bytes()).expect("a long id is read");
    assert_eq!(
        op.facts().secret_id.map(|s| s.chars().count()),
        Some(500_000)
    );
    let many = format!(
        r#"{{"SecretId": "s", "TagKeys": [{}]}}"#,
        vec![r#""k""#; 100_000].join(",")
    );
    assert!(matches!(
        decode(sm, "UntagResource", many.as_bytes()),
        Ok(Operation::UntagResource(
            crate::service::types::UntagResourceRequest { .. }
        ))
    ));
    let huge_number = format!(r#"{{"MaxResults": 1{}}}"#, "0".repeat(100_000));
    assert!(decode(sm, "ListSecrets", huge_number.as_bytes()).is_err());
}
