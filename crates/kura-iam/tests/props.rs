//! Property tests for what kura-iam reads from clients: the SigV4 `Authorization` header and
//! canonical request, IAM policy documents and their evaluation. Arbitrary and hostile input
//! must never panic nor blow up (a hang is the failure: no timings are asserted), and what
//! parses, prints and parses again is the same value.
//!
//! The default case count runs in CI; `PROPTEST_CASES=1000000` runs a long soak.

use chrono::{DateTime, Duration, Utc};
use kura_iam::eval::{ConditionKeys, Decision, RequestContext, evaluate};
use kura_iam::policy::{self, PolicyDocument, PolicyKind};
use kura_iam::sigv4::{self, Authorization, Request, SigV4Error};
use proptest::prelude::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// SigV4

/// Text made of what the Authorization grammar splits on, plus arbitrary characters.
fn authorization_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("AWS4-HMAC-SHA256 ".to_string()),
        Just("Credential=".to_string()),
        Just("SignedHeaders=".to_string()),
        Just("Signature=".to_string()),
        Just("AKIDEXAMPLE/20150830/us-east-1/secretsmanager/aws4_request".to_string()),
        Just("host;x-amz-date".to_string()),
        Just("0123456789abcdef".repeat(4)),
        Just(",".to_string()),
        Just(", ".to_string()),
        Just("/".to_string()),
        Just(";".to_string()),
        Just("=".to_string()),
        Just(" ".to_string()),
        Just("é".to_string()),
        any::<char>().prop_map(String::from),
        "[a-zA-Z0-9-]{1,10}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

/// A well-formed Authorization (what a client could send and the parser must accept).
fn authorization() -> impl Strategy<Value = Authorization> {
    // No '/' ',' in credential parts (they separate), no leading/trailing space.
    let part = "[A-Za-z0-9_.=+-][A-Za-z0-9_.=+ -]{0,20}[A-Za-z0-9_.=+-]|[A-Za-z0-9]";
    (
        part,
        "[0-9]{8}",
        part,
        part,
        prop::collection::vec("[a-z0-9!#$%&'*+.^_`|~:-]{1,20}", 1..8),
        prop::collection::vec(any::<u8>(), 32),
    )
        .prop_map(
            |(access_key_id, date, region, service, signed_headers, signature)| Authorization {
                access_key_id,
                date,
                region,
                service,
                signed_headers,
                signature,
            },
        )
}

/// A header name a client could sign (an HTTP token).
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("x-amz-target".to_string()),
        Just("content-type".to_string()),
        Just("X-Amz-Security-Token".to_string()),
        Just("x-amz-content-sha256".to_string()),
        "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,16}",
    ]
}

/// A path as it may arrive: segments with dots, empties, percent escapes and odd characters.
fn raw_path() -> impl Strategy<Value = String> {
    let seg = prop_oneof![
        Just("".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just("%2F".to_string()),
        Just("%3A".to_string()),
        Just("%".to_string()),
        Just("%zz".to_string()),
        "[A-Za-z0-9._~ :@!$&'()*+,;=-]{1,8}",
        any::<char>()
            .prop_filter("no slash", |c| *c != '/')
            .prop_map(String::from),
    ];
    prop::collection::vec(seg, 0..10).prop_map(|v| format!("/{}", v.join("/")))
}

fn raw_query() -> impl Strategy<Value = String> {
    let item = prop_oneof![
        "[A-Za-z0-9._~+%-]{0,8}=[A-Za-z0-9._~+%= -]{0,8}",
        "[A-Za-z0-9._~+%-]{1,8}",
        Just("".to_string()),
        any::<String>(),
    ];
    prop::collection::vec(item, 0..6).prop_map(|v| v.join("&"))
}

#[derive(Debug)]
struct Signed {
    headers: Vec<(String, String)>,
    method: String,
    path: String,
    query: String,
    body: Vec<u8>,
}

impl Signed {
    fn request<'a>(&'a self, headers: &'a [(&'a str, &'a str)]) -> Request<'a> {
        Request {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers,
            body: &self.body,
        }
    }
}

fn signable() -> impl Strategy<Value = Signed> {
    (
        prop::sample::select(&["POST", "GET", "PUT", "DELETE"][..]),
        raw_path(),
        raw_query(),
        prop::collection::vec((header_name(), any::<String>()), 0..6),
        prop::collection::vec(any::<u8>(), 0..256),
    )
        .prop_map(|(method, path, query, extra, body)| {
            let mut headers = vec![
                ("Host".to_string(), "127.0.0.1:4566".to_string()),
                ("X-Amz-Date".to_string(), "20260301T120000Z".to_string()),
            ];
            // Header values travel as visible ASCII and spaces; the checks below still see
            // every character the strategy made through the non-ASCII-free variant.
            for (name, value) in extra {
                let lower = name.to_ascii_lowercase();
                if lower == "host" || lower == "x-amz-date" || lower == "x-amz-content-sha256" {
                    continue;
                }
                headers.push((name, value));
            }
            Signed {
                headers,
                method: method.to_string(),
                path,
                query,
                body,
            }
        })
}

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .expect("a fixed time")
}

proptest! {
    #[test]
    fn authorization_parser_never_panics(s in prop_oneof![authorization_text(), any::<String>()]) {
        let _ = sigv4::parse_authorization(&s);
    }

    /// What parses prints back to a header that parses to the same value.
    #[test]
    fn parsed_authorization_round_trips(s in authorization_text()) {
        if let Ok(a) = sigv4::parse_authorization(&s) {
            let printed = a.to_string();
            prop_assert_eq!(sigv4::parse_authorization(&printed), Ok(a));
        }
    }

    #[test]
    fn authorization_prints_and_parses_back(a in authorization()) {
        let printed = a.to_string();
        prop_assert_eq!(sigv4::parse_authorization(&printed), Ok(a));
    }

    /// Whatever the method, path, query, headers and body, kura's signer and verifier agree,
    /// and a changed body breaks the signature. Exercises the canonicaliser on hostile input.
    #[test]
    fn signed_requests_verify(req in signable()) {
        let pairs: Vec<(&str, &str)> =
            req.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let request = req.request(&pairs);
        let header = sigv4::authorization_header(
            &request, "AKIDEXAMPLE", SECRET, "us-east-1", "secretsmanager", "20260301T120000Z",
        );
        let header = match header {
            Ok(h) => h,
            Err(e) => return Err(TestCaseError::fail(format!("signing failed: {e}"))),
        };
        let auth = sigv4::parse_authorization(&header);
        prop_assert!(auth.is_ok(), "{header}: {auth:?}");
        let auth = auth.expect("checked");
        let key = sigv4::derive_signing_key(SECRET, &auth.date, &auth.region, &auth.service);
        let skew = Duration::minutes(15);
        prop_assert_eq!(
            sigv4::verify(&request, &auth, &key, "secretsmanager", now(), skew),
            Ok(())
        );
        let mut body = req.body.clone();
        body.push(b'x');
        let tampered = Request { body: &body, ..request };
        prop_assert_eq!(
            sigv4::verify(&tampered, &auth, &key, "secretsmanager", now(), skew),
            Err(SigV4Error::Mismatch)
        );
    }

    /// The canonicaliser and the verifier take anything a socket can deliver without panicking.
    #[test]
    fn canonicaliser_and_verifier_never_panic(
        method in any::<String>(),
        path in prop_oneof![raw_path(), any::<String>()],
        query in raw_query(),
        headers in prop::collection::vec((any::<String>(), any::<String>()), 0..6),
        date in prop_oneof![Just("20260301T120000Z".to_string()), any::<String>()],
        signed in prop::collection::vec(prop_oneof![header_name(), any::<String>()], 0..6),
        auth in authorization(),
    ) {
        let mut all: Vec<(&str, &str)> =
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        all.push(("x-amz-date", &date));
        all.push(("host", "h"));
        let request = Request { method: &method, path: &path, query: &query, headers: &all, body: b"" };
        let _ = sigv4::canonical_request(&request, &signed);
        let _ = sigv4::request_time(&request);
        let key = sigv4::derive_signing_key(SECRET, &auth.date, &auth.region, &auth.service);
        let _ = sigv4::verify(&request, &auth, &key, &auth.service, now(), Duration::minutes(15));
        let _ = sigv4::authorization_header(&request, "AK", SECRET, "r", "s", &date);
    }
}

// ---------------------------------------------------------------------------------------------
// Policies

fn pattern_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[a-zA-Z0-9/_-]{1,6}",
        2 => Just("*".to_string()),
        1 => Just("?".to_string()),
        2 => Just(":".to_string()),
        1 => Just("${aws:username}".to_string()),
        1 => Just("${aws:userid, 'x'}".to_string()),
        1 => Just("${*}".to_string()),
        1 => Just("${".to_string()),
        1 => Just("}".to_string()),
        1 => Just("é".to_string()),
        1 => any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..10).prop_map(|v| v.concat())
}

fn action_pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        Just("secretsmanager:*".to_string()),
        Just("secretsmanager:GetSecretValue".to_string()),
        Just("SecretsManager:get*".to_string()),
        Just("kura:*".to_string()),
        "secretsmanager:[A-Za-z*?]{1,12}",
    ]
}

fn resource_pattern() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        Just("arn:aws:secretsmanager:us-east-1:123456789012:secret:*".to_string()),
        pattern_text().prop_map(|p| format!("arn:aws:secretsmanager:*:*:secret:{p}")),
        pattern_text().prop_map(|p| format!("arn:aws:s3:::{p}")),
        pattern_text().prop_map(|p| format!("arn:{p}")),
    ]
}

const OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "ArnLike",
    "ArnNotLike",
    "ArnEquals",
    "NumericLessThan",
    "NumericGreaterThanEquals",
    "DateLessThan",
    "DateGreaterThan",
    "Bool",
    "BinaryEquals",
    "IpAddress",
    "NotIpAddress",
    "Null",
    "ForAnyValue:StringLike",
    "ForAllValues:StringEquals",
    "StringLikeIfExists",
];

const KEYS: &[&str] = &[
    "aws:username",
    "aws:userid",
    "aws:SourceIp",
    "aws:CurrentTime",
    "aws:EpochTime",
    "aws:PrincipalTag/team",
    "secretsmanager:VersionStage",
    "aws:ResourceTag/env",
    "aws:TagKeys",
    "aws:SecureTransport",
];

fn condition_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        pattern_text().prop_map(Value::from),
        Just(json!("10.0.0.0/8")),
        Just(json!("::1/128")),
        Just(json!("2026-03-01T00:00:00Z")),
        Just(json!("true")),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<bool>().prop_map(Value::from),
        Just(json!("1e400")),
    ]
}

fn one_or_many(s: BoxedStrategy<String>) -> BoxedStrategy<Value> {
    prop_oneof![
        s.clone().prop_map(Value::from),
        prop::collection::vec(s, 1..4).prop_map(Value::from),
    ]
    .boxed()
}

fn statement() -> impl Strategy<Value = Value> {
    let condition = prop::collection::btree_map(
        prop::sample::select(OPERATORS),
        prop::collection::btree_map(
            prop::sample::select(KEYS),
            prop_oneof![
                condition_value(),
                prop::collection::vec(condition_value(), 1..4).prop_map(Value::from),
            ],
            1..3,
        ),
        0..3,
    );
    let principal = prop_oneof![
        Just(json!("*")),
        Just(json!({"AWS": "arn:aws:iam::123456789012:root"})),
        Just(json!({"AWS": ["arn:aws:iam::123456789012:user/alice", "*"]})),
        Just(json!({"Service": "lambda.amazonaws.com"})),
    ];
    (
        prop::option::of("[A-Za-z0-9]{0,6}"),
        prop::sample::select(&["Allow", "Allow", "Deny"][..]),
        any::<bool>(),
        one_or_many(action_pattern().boxed()),
        any::<bool>(),
        one_or_many(resource_pattern().boxed()),
        prop::option::weighted(0.2, principal),
        condition,
    )
        .prop_map(
            |(sid, effect, not_action, actions, not_resource, resources, principal, condition)| {
                let mut s = serde_json::Map::new();
                if let Some(sid) = sid {
                    s.insert("Sid".into(), sid.into());
                }
                s.insert("Effect".into(), effect.into());
                let a = if not_action { "NotAction" } else { "Action" };
                s.insert(a.into(), actions);
                let r = if not_resource {
                    "NotResource"
                } else {
                    "Resource"
                };
                s.insert(r.into(), resources);
                if let Some(p) = principal {
                    s.insert("Principal".into(), p);
                }
                let condition: serde_json::Map<String, Value> = condition
                    .into_iter()
                    .map(|(op, keys)| {
                        let keys = keys.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                        (op.to_string(), Value::Object(keys))
                    })
                    .collect();
                if !condition.is_empty() {
                    s.insert("Condition".into(), Value::Object(condition));
                }
                Value::Object(s)
            },
        )
}

/// A structured document that is valid as an identity policy more often than not.
fn doc_for_breaking() -> impl Strategy<Value = String> {
    (
        prop::option::of(prop::sample::select(&["2012-10-17", "2008-10-17"][..])),
        prop::collection::vec(statement(), 1..4),
        any::<bool>(),
    )
        .prop_map(|(version, statements, lone)| {
            let mut top = serde_json::Map::new();
            if let Some(v) = version {
                top.insert("Version".into(), v.into());
            }
            let statements = match (lone, statements.as_slice()) {
                (true, [one]) => one.clone(),
                _ => Value::from(statements),
            };
            top.insert("Statement".into(), statements);
            Value::Object(top).to_string()
        })
}

/// A statement element set to something invalid.
fn broken_value() -> impl Strategy<Value = (&'static str, Value)> {
    (
        prop::sample::select(
            &[
                "Effect",
                "Action",
                "Resource",
                "Condition",
                "Sid",
                "Principal",
                "Bogus",
            ][..],
        ),
        prop_oneof![
            Just(json!(null)),
            Just(json!({})),
            Just(json!([])),
            Just(json!("allow")),
            Just(json!({"Bogus": {"k": "v"}})),
            Just(json!({"NullIfExists": {"k": "true"}})),
            Just(json!({"StringLike": {"k": [null]}})),
            Just(json!({"StringLike": {"": "v"}})),
            pattern_text().prop_map(Value::from),
        ],
    )
}

/// Policy text: mostly structured documents, some of them broken on purpose.
fn policy_text() -> impl Strategy<Value = String> {
    let doc = doc_for_breaking();
    prop_oneof![
        12 => doc,
        // Broken on purpose: one element of a valid document replaced by junk.
        1 => (doc_for_breaking(), broken_value()).prop_map(|(d, (k, v))| {
            let mut d: Value = serde_json::from_str(&d).unwrap_or_default();
            if let Some(s) = d.get_mut("Statement") {
                let s = match s { Value::Array(a) => &mut a[0], s => s };
                if let Value::Object(o) = s {
                    o.insert(k.to_string(), v);
                }
            }
            d.to_string()
        }),
        // Deep nesting: the JSON reader's recursion limit must refuse it, not the stack.
        1 => (1usize..5000).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
        1 => (1usize..5000).prop_map(|n| {
            format!("{{\"Statement\":{}1{}}}", "{\"a\":".repeat(n), "}".repeat(n))
        }),
        1 => Just("{\"Version\":\"2012-10-17\",\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"*\",\"Condition\":{\"NumericLessThan\":{\"k\":1e400}}}}".to_string()),
        1 => any::<String>(),
    ]
}

fn context_keys() -> impl Strategy<Value = ConditionKeys> {
    prop::collection::vec(
        (
            prop::sample::select(KEYS),
            prop::collection::vec(
                prop_oneof![
                    pattern_text(),
                    Just("10.1.2.3".to_string()),
                    Just("::1".to_string()),
                    Just("2026-03-01T12:00:00Z".to_string()),
                    Just("1772366400".to_string()),
                    Just("true".to_string()),
                    any::<String>(),
                ],
                0..3,
            ),
        ),
        0..6,
    )
    .prop_map(|pairs| {
        let mut keys = ConditionKeys::new();
        for (k, v) in pairs {
            keys.set(k, v);
        }
        keys
    })
}

fn principal_arn() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("arn:aws:iam::123456789012:root".to_string()),
        Just("arn:aws:iam::123456789012:user/alice".to_string()),
        Just("arn:aws:iam::123456789012:role/kura-rotation/f".to_string()),
        pattern_text(),
    ]
}

fn context_resource() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_string()),
        Just("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbC123".to_string()),
        "[a-zA-Z0-9/_+=.@:-]{0,64}"
            .prop_map(|n| { format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{n}") }),
        any::<String>(),
    ]
}

fn kinds() -> [PolicyKind; 2] {
    [PolicyKind::Identity, PolicyKind::Resource]
}

proptest! {
    /// Whatever parses prints as JSON that parses to the same document.
    #[test]
    fn policies_round_trip(text in policy_text()) {
        for kind in kinds() {
            if let Ok(doc) = policy::parse(&text, kind) {
                let printed = doc.to_json();
                let again = policy::parse(&printed, kind);
                prop_assert_eq!(again.as_ref(), Ok(&doc), "{}", printed);
            }
        }
    }

    /// Evaluation never panics, is deterministic, and an Allow-only set of policies never
    /// denies explicitly; a `Deny *` on everything always wins.
    #[test]
    fn evaluation_never_panics_and_deny_wins(
        identity in prop::collection::vec(policy_text(), 0..3),
        resource in prop::option::of(policy_text()),
        principal in principal_arn(),
        action in prop_oneof![
            Just("secretsmanager:GetSecretValue".to_string()),
            Just("kura:CreateUser".to_string()),
            any::<String>(),
        ],
        res in context_resource(),
        keys in context_keys(),
    ) {
        let identity: Vec<PolicyDocument> = identity
            .iter()
            .filter_map(|t| policy::parse(t, PolicyKind::Identity).ok())
            .collect();
        let resource = resource.and_then(|t| policy::parse(&t, PolicyKind::Resource).ok());
        let ctx = RequestContext {
            principal_arn: &principal,
            account: "123456789012",
            action: &action,
            resource: &res,
            keys: &keys,
        };
        let refs: Vec<&PolicyDocument> = identity.iter().collect();
        let first = evaluate(&ctx, &refs, resource.as_ref());
        prop_assert_eq!(&evaluate(&ctx, &refs, resource.as_ref()), &first);
        let _ = first.denial_message(&ctx);
        let _ = first.to_string();
        let any_deny = identity
            .iter()
            .chain(resource.as_ref())
            .flat_map(|d| &d.statements)
            .any(|s| s.effect == kura_iam::policy::Effect::Deny);
        if !any_deny {
            let explicit = matches!(first, Decision::ExplicitDeny { .. });
            prop_assert!(!explicit, "{first:?} without a Deny statement");
        }
        let deny_all = policy::parse(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*"}}"#,
            PolicyKind::Identity,
        )
        .expect("a valid policy");
        let mut with_deny = refs.clone();
        with_deny.push(&deny_all);
        let denied = evaluate(&ctx, &with_deny, resource.as_ref());
        prop_assert!(matches!(denied, Decision::ExplicitDeny { .. }), "{denied:?}");
    }

    #[test]
    fn policy_parser_never_panics_on_any_string(text in any::<String>()) {
        for kind in kinds() {
            let _ = policy::parse(&text, kind);
        }
    }
}

/// The generators reach the interesting part: many documents parse, so the round trip and the
/// evaluation properties are not vacuous.
#[test]
fn generated_policies_often_parse() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = policy_text();
    let parsed = (0..1000)
        .filter(|_| {
            let text = strategy.new_tree(&mut runner).expect("a value").current();
            policy::parse(&text, PolicyKind::Identity).is_ok()
        })
        .count();
    assert!(
        parsed > 100,
        "only {parsed} of 1000 generated policies parse"
    );
}

/// Large adversarial inputs, once each: 10k-character patterns with hundreds of `*` against
/// long values. They finish (a hang is the failure) with the right answer.
#[test]
fn long_wildcards_finish() {
    let stars = "a*".repeat(500) + &"b".repeat(9000);
    let value = "a".repeat(10_000);
    let doc = |operator: &str, pattern: &str| {
        let text = json!({
            "Version": "2012-10-17",
            "Statement": {
                "Effect": "Allow", "Action": "*", "Resource": "*",
                "Condition": {operator: {"aws:PrincipalTag/team": pattern}}
            }
        });
        policy::parse(&text.to_string(), PolicyKind::Identity).expect("a valid policy")
    };
    let keys = ConditionKeys::new().with("aws:PrincipalTag/team", [value.clone()]);
    let arn_value = format!("arn:aws:s3:::{value}");
    let arn_keys = ConditionKeys::new().with("aws:PrincipalTag/team", [arn_value]);
    let arn_stars = format!("arn:aws:s3:::{stars}");
    for (d, k) in [
        (doc("StringLike", &stars), &keys),
        (doc("ForAnyValue:StringLike", &stars), &keys),
        (doc("ArnLike", &arn_stars), &arn_keys),
    ] {
        let ctx = RequestContext {
            principal_arn: "arn:aws:iam::123456789012:user/alice",
            account: "123456789012",
            action: "secretsmanager:GetSecretValue",
            resource: "*",
            keys: k,
        };
        assert_eq!(evaluate(&ctx, &[&d], None), Decision::ImplicitDeny);
    }
    // Resource and action patterns made of wildcards.
    let resource = format!("arn:aws:secretsmanager:*:*:secret:{}", "*?".repeat(2500));
    let action = format!("secretsmanager:{}", "*".repeat(5000));
    let text = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": {"Effect": "Allow", "Action": action, "Resource": resource}
    })
    .to_string();
    let d = policy::parse(&text, PolicyKind::Identity).expect("a valid policy");
    let long_name = format!(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:{}",
        "x".repeat(5000)
    );
    let keys = ConditionKeys::new();
    let long_action = format!("secretsmanager:{}", "G".repeat(10_000));
    let ctx = RequestContext {
        principal_arn: "arn:aws:iam::123456789012:user/alice",
        account: "123456789012",
        action: &long_action,
        resource: &long_name,
        keys: &keys,
    };
    assert_eq!(evaluate(&ctx, &[&d], None), Decision::Allow);
    // A deep document is refused, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(policy::parse(&deep, PolicyKind::Identity).is_err());
    // A long Authorization header parses or fails without trouble.
    let header = format!("AWS4-HMAC-SHA256 {}", "Credential=a/,".repeat(10_000));
    assert!(sigv4::parse_authorization(&header).is_err());
}
