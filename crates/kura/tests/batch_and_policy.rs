//! BatchGetSecretValue, resource policies, and the replication operations kura does not offer.

mod common;

use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use common::*;

#[tokio::test]
async fn batch_by_ids_reports_failures_per_secret() {
    let server = Server::start().await;
    let c = server.client().await;
    let a = create_plain(&c, "batch/a", "batch-value-a").await;
    create_plain(&c, "batch/b", "batch-value-b").await;
    create_plain(&c, "batch/gone", "batch-value-c").await;
    ok(c.delete_secret().secret_id("batch/gone").send().await);
    let out = ok(c
        .batch_get_secret_value()
        .secret_id_list("batch/a")
        .secret_id_list(partial_arn(&a))
        .secret_id_list("batch/b")
        .secret_id_list("batch/missing")
        .secret_id_list("batch/gone")
        .send()
        .await);
    let values: Vec<(&str, &str)> = out
        .secret_values()
        .iter()
        .map(|v| (v.name().unwrap(), v.secret_string().unwrap()))
        .collect();
    assert_eq!(
        values,
        [
            ("batch/a", "batch-value-a"),
            ("batch/a", "batch-value-a"),
            ("batch/b", "batch-value-b")
        ]
    );
    assert!(
        out.secret_values()
            .iter()
            .all(|v| v.version_stages() == ["AWSCURRENT"])
    );
    let errors: Vec<(&str, &str)> = out
        .errors()
        .iter()
        .map(|e| (e.secret_id().unwrap(), e.error_code().unwrap()))
        .collect();
    assert_eq!(
        errors,
        [
            ("batch/missing", "ResourceNotFoundException"),
            ("batch/gone", "InvalidRequestException")
        ]
    );
}

#[tokio::test]
async fn batch_by_filters_pages() {
    let server = Server::start().await;
    let c = server.client().await;
    for i in 0..5 {
        create_plain(&c, &format!("team-x/{i}"), &format!("team-x-value-{i}")).await;
    }
    create_plain(&c, "team-y/0", "team-y-value-0").await;
    let filter = Filter::builder()
        .key(FilterNameStringType::Name)
        .values("team-x/")
        .build();
    let mut got = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = ok(c
            .batch_get_secret_value()
            .filters(filter.clone())
            .max_results(2)
            .set_next_token(token)
            .send()
            .await);
        assert!(out.secret_values().len() <= 2);
        got.extend(
            out.secret_values()
                .iter()
                .map(|v| v.secret_string().unwrap().to_string()),
        );
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    got.sort();
    assert_eq!(
        got,
        [
            "team-x-value-0",
            "team-x-value-1",
            "team-x-value-2",
            "team-x-value-3",
            "team-x-value-4"
        ]
    );
}

#[tokio::test]
async fn batch_needs_exactly_one_selector() {
    let server = Server::start().await;
    let c = server.client().await;
    assert_api_err(
        c.batch_get_secret_value().send().await,
        "InvalidParameterException",
        None,
    );
    let filter = Filter::builder()
        .key(FilterNameStringType::Name)
        .values("a")
        .build();
    assert_api_err(
        c.batch_get_secret_value()
            .secret_id_list("a")
            .filters(filter)
            .send()
            .await,
        "InvalidParameterException",
        None,
    );
    let mut req = c.batch_get_secret_value();
    for i in 0..21 {
        req = req.secret_id_list(format!("s{i}"));
    }
    assert_api_err(req.send().await, "ValidationException", None);
}

const POLICY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [{
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::123456789012:user/alice"},
    "Action": "secretsmanager:GetSecretValue",
    "Resource": "*"
  }]
}"#;

#[tokio::test]
async fn resource_policy_put_get_delete() {
    let server = Server::start().await;
    let c = server.client().await;
    let arn = create_plain(&c, "pol/a", "policy-test-value").await;
    let got = ok(c.get_resource_policy().secret_id("pol/a").send().await);
    assert_eq!(got.resource_policy(), None);
    assert_eq!(got.arn(), Some(arn.as_str()));
    ok(c.put_resource_policy()
        .secret_id("pol/a")
        .resource_policy(POLICY)
        .send()
        .await);
    let got = ok(c.get_resource_policy().secret_id("pol/a").send().await);
    let stored: serde_json::Value = serde_json::from_str(got.resource_policy().unwrap()).unwrap();
    let sent: serde_json::Value = serde_json::from_str(POLICY).unwrap();
    assert_eq!(stored, sent);
    ok(c.delete_resource_policy().secret_id("pol/a").send().await);
    let got = ok(c.get_resource_policy().secret_id("pol/a").send().await);
    assert_eq!(got.resource_policy(), None);
    // The raw answer omits the field rather than sending null.
    let raw = server
        .raw(
            "GetResourcePolicy",
            r#"{"SecretId":"pol/a"}"#,
            SignMode::Root,
        )
        .await
        .assert_ok();
    assert!(raw.get("ResourcePolicy").is_none(), "{raw}");
}

#[tokio::test]
async fn malformed_and_public_policies_are_refused() {
    let server = Server::start().await;
    let c = server.client().await;
    create_plain(&c, "pol/b", "policy-test-value").await;
    let bad = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Permit","Principal":"*","Action":"secretsmanager:*","Resource":"*"}]}"#;
    let err = assert_api_err(
        c.put_resource_policy()
            .secret_id("pol/b")
            .resource_policy(bad)
            .send()
            .await,
        "MalformedPolicyDocumentException",
        None,
    );
    assert!(err.message.contains("Effect"), "{err:?}");
    let public = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;
    assert_api_err(
        c.put_resource_policy()
            .secret_id("pol/b")
            .resource_policy(public)
            .block_public_policy(true)
            .send()
            .await,
        "PublicPolicyException",
        None,
    );
    // Without BlockPublicPolicy the same policy is stored.
    ok(c.put_resource_policy()
        .secret_id("pol/b")
        .resource_policy(public)
        .send()
        .await);
    let v = ok(c
        .validate_resource_policy()
        .secret_id("pol/b")
        .resource_policy(bad)
        .send()
        .await);
    assert!(!v.policy_validation_passed());
    assert!(
        v.validation_errors()[0]
            .error_message()
            .unwrap()
            .contains("Effect")
    );
    let v = ok(c
        .validate_resource_policy()
        .resource_policy(POLICY)
        .send()
        .await);
    assert!(v.policy_validation_passed());
    assert!(v.validation_errors().is_empty());
}

#[tokio::test]
async fn replication_operations_say_replication_is_unavailable() {
    let server = Server::start().await;
    let c = server.client().await;
    create_plain(&c, "rep/a", "policy-test-value").await;
    for (op, body) in [
        (
            "ReplicateSecretToRegions",
            r#"{"SecretId":"rep/a","AddReplicaRegions":[{"Region":"eu-west-1"}]}"#,
        ),
        (
            "RemoveRegionsFromReplication",
            r#"{"SecretId":"rep/a","RemoveReplicaRegions":["eu-west-1"]}"#,
        ),
        ("StopReplicationToReplica", r#"{"SecretId":"rep/a"}"#),
    ] {
        let msg = server
            .raw(op, body, SignMode::Root)
            .await
            .assert_error("InvalidRequestException");
        assert!(msg.contains("replication"), "{op}: {msg}");
    }
}

/// A user with one access key and one inline policy; returns an SDK client signed as it.
async fn user_with_policy(
    server: &Server,
    name: &str,
    statements: serde_json::Value,
) -> aws_sdk_secretsmanager::Client {
    use serde_json::json;
    server
        .kura("CreateUser", &json!({ "UserName": name }).to_string())
        .await
        .assert_ok();
    let doc = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
    server
        .kura(
            "PutUserPolicy",
            &json!({"UserName": name, "PolicyName": "p", "PolicyDocument": doc}).to_string(),
        )
        .await
        .assert_ok();
    let key = server
        .kura("CreateAccessKey", &json!({ "UserName": name }).to_string())
        .await
        .assert_ok();
    server
        .client_with(
            key["AccessKey"]["AccessKeyId"].as_str().unwrap(),
            key["AccessKey"]["SecretAccessKey"].as_str().unwrap(),
        )
        .await
}

#[tokio::test]
async fn batch_by_filters_needs_list_secrets_permission() {
    let server = Server::start().await;
    let root = server.client().await;
    create_plain(&root, "perm/a", "permitted-value-a").await;
    let bob = user_with_policy(
        &server,
        "bob",
        serde_json::json!([{
            "Effect": "Allow",
            "Action": ["secretsmanager:BatchGetSecretValue", "secretsmanager:GetSecretValue",
                       "secretsmanager:DescribeSecret"],
            "Resource": "*"
        }]),
    )
    .await;
    let filter = Filter::builder()
        .key(FilterNameStringType::Name)
        .values("perm/")
        .build();
    let err = assert_api_err(
        bob.batch_get_secret_value()
            .filters(filter.clone())
            .send()
            .await,
        "AccessDeniedException",
        None,
    );
    assert!(err.message.contains("ListSecrets"), "{err:?}");
    // Naming the secrets needs no listing.
    let out = ok(bob
        .batch_get_secret_value()
        .secret_id_list("perm/a")
        .send()
        .await);
    assert_eq!(
        out.secret_values()[0].secret_string(),
        Some("permitted-value-a")
    );
}

#[tokio::test]
async fn batch_by_filters_reports_only_secrets_the_caller_may_describe() {
    let server = Server::start().await;
    let root = server.client().await;
    create_plain(&root, "team-a/x", "team-value-x").await;
    create_plain(&root, "team-b/y", "team-value-y").await;
    create_plain(&root, "team-c/z", "team-value-z").await;
    let carol = user_with_policy(
        &server,
        "carol",
        serde_json::json!([
            {"Effect": "Allow",
             "Action": ["secretsmanager:BatchGetSecretValue", "secretsmanager:ListSecrets"],
             "Resource": "*"},
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
             "Resource": "arn:aws:secretsmanager:*:*:secret:team-a/*"},
            {"Effect": "Allow", "Action": "secretsmanager:DescribeSecret",
             "Resource": ["arn:aws:secretsmanager:*:*:secret:team-a/*",
                          "arn:aws:secretsmanager:*:*:secret:team-b/*"]}
        ]),
    )
    .await;
    let filter = Filter::builder()
        .key(FilterNameStringType::Name)
        .values("team-")
        .build();
    let out = ok(carol.batch_get_secret_value().filters(filter).send().await);
    let values: Vec<&str> = out
        .secret_values()
        .iter()
        .map(|v| v.name().unwrap())
        .collect();
    assert_eq!(values, ["team-a/x"]);
    let errors: Vec<(&str, &str)> = out
        .errors()
        .iter()
        .map(|e| (e.secret_id().unwrap(), e.error_code().unwrap()))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].0.contains(":secret:team-b/y-"), "{errors:?}");
    assert_eq!(errors[0].1, "AccessDeniedException");
    // Nothing in the answer names the secret carol may not describe.
    assert!(!format!("{out:?}").contains("team-c"), "{out:?}");
}
