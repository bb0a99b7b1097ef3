//! Policy parsing and evaluation: an identity policy of ten statements with wildcards,
//! conditions and a policy variable, and a resource policy, as attached in practice. Run with
//! `cargo bench -p kura-iam --bench policy`.

use std::hint::black_box;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use kura_iam::eval::{self, ConditionKeys, Decision, RequestContext};
use kura_iam::policy::{self, PolicyKind};

const ACCOUNT: &str = "000000000000";
const ALICE: &str = "arn:aws:iam::000000000000:user/alice";
const SECRET: &str = "arn:aws:secretsmanager:us-east-1:000000000000:secret:app/alice/db-AbCdEf";
const PROD: &str = "arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/payments/key-XyZ123";

const IDENTITY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "ReadOwnApp", "Effect": "Allow",
     "Action": ["secretsmanager:GetSecretValue", "secretsmanager:Describe*"],
     "Resource": "arn:aws:secretsmanager:*:000000000000:secret:app/${aws:username}/*",
     "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]},
                   "Bool": {"aws:SecureTransport": "true"}}},
    {"Sid": "WriteOwnApp", "Effect": "Allow",
     "Action": ["secretsmanager:PutSecretValue", "secretsmanager:UpdateSecret*"],
     "Resource": "arn:aws:secretsmanager:*:000000000000:secret:app/${aws:username}/*"},
    {"Sid": "ListAll", "Effect": "Allow",
     "Action": ["secretsmanager:ListSecrets", "secretsmanager:GetRandomPassword"],
     "Resource": "*"},
    {"Sid": "TeamShared", "Effect": "Allow", "Action": "secretsmanager:Get*",
     "Resource": "arn:aws:secretsmanager:us-east-1:000000000000:secret:shared/team-?/*",
     "Condition": {"StringEquals": {"secretsmanager:ResourceTag/team": "payments"}}},
    {"Sid": "Tagging", "Effect": "Allow",
     "Action": ["secretsmanager:TagResource", "secretsmanager:UntagResource"],
     "Resource": "arn:aws:secretsmanager:*:*:secret:app/*",
     "Condition": {"ForAllValues:StringLike": {"aws:TagKeys": ["team", "env-*"]}}},
    {"Sid": "RotateOwn", "Effect": "Allow", "Action": "secretsmanager:RotateSecret",
     "Resource": "arn:aws:secretsmanager:*:000000000000:secret:app/*",
     "Condition": {"ArnLike": {"secretsmanager:RotationLambdaARN":
                   "arn:aws:lambda:*:000000000000:function:rotate-*"}}},
    {"Sid": "BusinessHours", "Effect": "Allow", "Action": "secretsmanager:CreateSecret",
     "Resource": "arn:aws:secretsmanager:*:000000000000:secret:app/*",
     "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}},
    {"Sid": "NoProd", "Effect": "Deny", "Action": "secretsmanager:*",
     "Resource": "arn:aws:secretsmanager:*:*:secret:prod/*"},
    {"Sid": "NoDelete", "Effect": "Deny",
     "Action": ["secretsmanager:DeleteSecret", "secretsmanager:DeleteResourcePolicy"],
     "Resource": "*",
     "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}},
    {"Sid": "NoPlainHttp", "Effect": "Deny", "NotAction": "secretsmanager:ListSecrets",
     "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
  ]
}"#;

const RESOURCE: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "AppRole", "Effect": "Allow",
     "Principal": {"AWS": ["arn:aws:iam::000000000000:user/app", "000000000000"]},
     "Action": "secretsmanager:GetSecretValue", "Resource": "*",
     "Condition": {"StringEquals": {"secretsmanager:VersionStage": "AWSCURRENT"}}},
    {"Sid": "NoOutsiders", "Effect": "Deny", "Principal": "*",
     "Action": "secretsmanager:*", "Resource": "*",
     "Condition": {"StringNotEquals": {"aws:PrincipalAccount": "000000000000"}}}
  ]
}"#;

fn bench(c: &mut Criterion) {
    let identity = policy::parse(IDENTITY, PolicyKind::Identity).expect("identity policy");
    let resource = policy::parse(RESOURCE, PolicyKind::Resource).expect("resource policy");
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-11-30T20:00:00Z")
        .expect("valid time")
        .with_timezone(&Utc);
    let mut keys = ConditionKeys::new()
        .with("aws:SourceIp", ["10.1.2.3"])
        .with("aws:SecureTransport", ["true"])
        .with("secretsmanager:VersionStage", ["AWSCURRENT"]);
    keys.set_request_time(now);
    let ctx = |action: &'static str, resource: &'static str| RequestContext {
        principal_arn: ALICE,
        account: ACCOUNT,
        action,
        resource,
        keys: &keys,
    };
    let allow = ctx("secretsmanager:GetSecretValue", SECRET);
    let explicit_deny = ctx("secretsmanager:GetSecretValue", PROD);
    let implicit_deny = ctx("secretsmanager:PutResourcePolicy", SECRET);
    let ids = [&identity];
    // The cases are what they claim to be, or the figures would mislead.
    assert_eq!(
        eval::evaluate(&allow, &ids, Some(&resource)),
        Decision::Allow
    );
    assert!(matches!(
        eval::evaluate(&explicit_deny, &ids, Some(&resource)),
        Decision::ExplicitDeny { .. }
    ));
    assert_eq!(
        eval::evaluate(&implicit_deny, &ids, Some(&resource)),
        Decision::ImplicitDeny
    );

    let mut g = c.benchmark_group("policy");
    g.bench_function("parse/identity_10_statements", |b| {
        b.iter(|| policy::parse(black_box(IDENTITY), PolicyKind::Identity))
    });
    g.bench_function("parse/resource", |b| {
        b.iter(|| policy::parse(black_box(RESOURCE), PolicyKind::Resource))
    });
    for (name, case) in [
        ("evaluate/allow", &allow),
        ("evaluate/explicit_deny", &explicit_deny),
        ("evaluate/implicit_deny", &implicit_deny),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| eval::evaluate(black_box(case), &ids, Some(&resource)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
