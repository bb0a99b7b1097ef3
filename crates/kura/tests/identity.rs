//! Users, access keys and policies: who may do what, decided by AWS's policy language.

mod common;

use common::*;
use serde_json::{Value, json};

/// Creates a user with one access key and returns an SDK client signed with it.
async fn user_client(
    server: &Server,
    name: &str,
    tags: Value,
) -> (aws_sdk_secretsmanager::Client, String, String) {
    server
        .kura(
            "CreateUser",
            &json!({"UserName": name, "Tags": tags}).to_string(),
        )
        .await
        .assert_ok();
    let (id, secret) = create_access_key(server, name).await;
    (server.client_with(&id, &secret).await, id, secret)
}

async fn put_policy(server: &Server, user: &str, name: &str, doc: Value) {
    server
        .kura(
            "PutUserPolicy",
            &json!({"UserName": user, "PolicyName": name, "PolicyDocument": doc.to_string()})
                .to_string(),
        )
        .await
        .assert_ok();
}

#[tokio::test]
async fn a_user_limited_to_team_a_reads_those_secrets_and_nothing_else() {
    let server = Server::start().await;
    let root = server.client().await;
    let a1 = ok(root
        .create_secret()
        .name("team-a/db")
        .secret_string("a1")
        .tags(tag("team", "a"))
        .send()
        .await);
    ok(root
        .create_secret()
        .name("team-b/db")
        .secret_string("b1")
        .tags(tag("team", "b"))
        .send()
        .await);
    ok(root
        .create_secret()
        .name("untagged")
        .secret_string("u1")
        .send()
        .await);
    let (alice, akid, secret) = user_client(&server, "alice", json!([])).await;
    put_policy(
        &server,
        "alice",
        "read-team-a",
        json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
                "Condition": {"StringEquals": {"secretsmanager:ResourceTag/team": "a"}}
            }]
        }),
    )
    .await;

    assert_eq!(get_string(&alice, "team-a/db").await, "a1");
    assert_eq!(get_string(&alice, a1.arn().unwrap()).await, "a1");
    for id in ["team-b/db", "untagged"] {
        let e = api_err(alice.get_secret_value().secret_id(id).send().await);
        assert_eq!(e.code, "AccessDeniedException", "{id}: {e:?}");
        let msg = e.message.clone();
        assert!(
            msg.contains("arn:aws:iam::")
                && msg.contains("user/alice")
                && msg.contains("secretsmanager:GetSecretValue")
                && msg.contains(id),
            "the denial names principal, action and resource: {msg}"
        );
    }
    // Every write is denied, on her own team's secret too.
    let writes = [
        api_err(
            alice
                .put_secret_value()
                .secret_id("team-a/db")
                .secret_string("x")
                .send()
                .await,
        ),
        api_err(
            alice
                .create_secret()
                .name("team-a/new")
                .secret_string("x")
                .send()
                .await,
        ),
        api_err(alice.delete_secret().secret_id("team-a/db").send().await),
        api_err(
            alice
                .update_secret()
                .secret_id("team-a/db")
                .description("x")
                .send()
                .await,
        ),
        api_err(
            alice
                .tag_resource()
                .secret_id("team-a/db")
                .tags(tag("team", "b"))
                .send()
                .await,
        ),
    ];
    for e in writes {
        assert_eq!(e.code, "AccessDeniedException", "{e:?}");
    }
    let e = api_err(alice.describe_secret().secret_id("team-a/db").send().await);
    assert_eq!(e.code, "AccessDeniedException");
    assert_eq!(
        get_string(&root, "team-a/db").await,
        "a1",
        "nothing changed"
    );
    // Kura's own operations are policy-checked too: she is allowed none of them, so none
    // may give her a key, a policy or another user, or show her the trail.
    let everything =
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
            .to_string();
    let kura_calls = [
        ("CreateUser", json!({"UserName": "mallory"})),
        ("DeleteUser", json!({"UserName": "alice"})),
        ("ListUsers", json!({})),
        ("CreateAccessKey", json!({"UserName": "alice"})),
        (
            "UpdateAccessKey",
            json!({"UserName": "alice", "AccessKeyId": akid, "Status": "Inactive"}),
        ),
        (
            "DeleteAccessKey",
            json!({"UserName": "alice", "AccessKeyId": akid}),
        ),
        ("ListAccessKeys", json!({"UserName": "alice"})),
        (
            "PutUserPolicy",
            json!({"UserName": "alice", "PolicyName": "all", "PolicyDocument": everything}),
        ),
        (
            "GetUserPolicy",
            json!({"UserName": "alice", "PolicyName": "read-team-a"}),
        ),
        (
            "DeleteUserPolicy",
            json!({"UserName": "alice", "PolicyName": "read-team-a"}),
        ),
        ("ListUserPolicies", json!({"UserName": "alice"})),
        ("LookupAuditEvents", json!({})),
        ("ListRotationFunctions", json!({})),
        ("DeleteRotationFunction", json!({"Name": "nothing"})),
        ("ListNotificationTargets", json!({})),
        (
            "CreateNotificationTarget",
            json!({"Url": "http://127.0.0.1:9/", "Events": ["RotationSucceeded"]}),
        ),
        ("DeleteNotificationTarget", json!({"TargetId": "t"})),
    ];
    for (op, body) in &kura_calls {
        let msg = server
            .raw_as(&akid, &secret, &format!("Kura.{op}"), &body.to_string())
            .await
            .assert_error("AccessDeniedException");
        assert!(
            msg.contains("user/alice") && msg.contains(&format!("kura:{op}")),
            "the denial names principal and action: {msg}"
        );
    }
    // Nothing changed: no new user, her key and policies as they were.
    let users = server.kura("ListUsers", "{}").await.assert_ok();
    assert!(!users.to_string().contains("mallory"), "{users}");
    let policies = server
        .kura("ListUserPolicies", r#"{"UserName": "alice"}"#)
        .await
        .assert_ok();
    assert_eq!(policies["PolicyNames"], json!(["read-team-a"]));
    assert_eq!(get_string(&alice, "team-a/db").await, "a1");
    // And it is her policy that decides, not a blanket refusal of users: allowed one Kura
    // action, she gets that one and still no other.
    put_policy(
        &server,
        "alice",
        "list-policies",
        json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "kura:ListUserPolicies", "Resource": "*"}]}),
    )
    .await;
    let own = server
        .raw_as(
            &akid,
            &secret,
            "Kura.ListUserPolicies",
            r#"{"UserName": "alice"}"#,
        )
        .await
        .assert_ok();
    assert_eq!(own["PolicyNames"], json!(["list-policies", "read-team-a"]));
    server
        .raw_as(
            &akid,
            &secret,
            "Kura.CreateUser",
            r#"{"UserName": "mallory"}"#,
        )
        .await
        .assert_error("AccessDeniedException");
}

#[tokio::test]
async fn an_inactive_or_deleted_key_is_refused() {
    let server = Server::start().await;
    let root = server.client().await;
    create_plain(&root, "k/one", "v").await;
    let (alice, id, secret) = user_client(&server, "alice", json!([])).await;
    put_policy(
        &server,
        "alice",
        "all",
        json!({"Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"}]}),
    )
    .await;
    assert_eq!(get_string(&alice, "k/one").await, "v");

    server
        .kura(
            "UpdateAccessKey",
            &json!({"UserName": "alice", "AccessKeyId": id, "Status": "Inactive"}).to_string(),
        )
        .await
        .assert_ok();
    let e = api_err(alice.get_secret_value().secret_id("k/one").send().await);
    assert_eq!(e.code, "UnrecognizedClientException", "{e:?}");
    server
        .kura(
            "UpdateAccessKey",
            &json!({"UserName": "alice", "AccessKeyId": id, "Status": "Active"}).to_string(),
        )
        .await
        .assert_ok();
    assert_eq!(get_string(&alice, "k/one").await, "v");

    let keys = server
        .kura("ListAccessKeys", &json!({"UserName": "alice"}).to_string())
        .await
        .assert_ok();
    let meta = &keys["AccessKeyMetadata"][0];
    assert_eq!(meta["AccessKeyId"], id.as_str());
    assert_eq!(meta["Status"], "Active");
    assert!(meta.get("LastUsedDate").is_some(), "{keys}");
    assert!(
        !keys.to_string().contains(&secret),
        "a listing never shows the secret half"
    );

    server
        .kura(
            "DeleteAccessKey",
            &json!({"UserName": "alice", "AccessKeyId": id}).to_string(),
        )
        .await
        .assert_ok();
    let e = api_err(alice.get_secret_value().secret_id("k/one").send().await);
    assert_eq!(e.code, "UnrecognizedClientException");
}

#[tokio::test]
async fn a_resource_policy_grants_a_second_user_one_secret() {
    let server = Server::start().await;
    let root = server.client().await;
    let shared = create_plain(&root, "shared/one", "s1").await;
    create_plain(&root, "private/two", "p2").await;
    let (bob, _, _) = user_client(&server, "bob", json!([])).await;
    let e = api_err(bob.get_secret_value().secret_id("shared/one").send().await);
    assert_eq!(e.code, "AccessDeniedException", "no policy yet: {e:?}");

    let bob_arn = server.kura("GetCallerIdentity", "{}").await.assert_ok()["Account"]
        .as_str()
        .map(|a| format!("arn:aws:iam::{a}:user/bob"))
        .unwrap();
    let policy = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": bob_arn},
        "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]});
    ok(root
        .put_resource_policy()
        .secret_id(&shared)
        .resource_policy(policy.to_string())
        .send()
        .await);
    assert_eq!(get_string(&bob, "shared/one").await, "s1");
    let e = api_err(bob.get_secret_value().secret_id("private/two").send().await);
    assert_eq!(e.code, "AccessDeniedException");

    // An explicit deny in his identity policy beats the resource policy's allow.
    put_policy(
        &server,
        "bob",
        "deny-shared",
        json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Action": "secretsmanager:*", "Resource": shared}]}),
    )
    .await;
    let e = api_err(bob.get_secret_value().secret_id("shared/one").send().await);
    assert_eq!(e.code, "AccessDeniedException");
    assert!(e.message.clone().contains("explicit deny"));
}

#[tokio::test]
async fn users_keys_and_policies_are_managed_with_kura_operations() {
    // GetCallerIdentity needs no permission (as sts:GetCallerIdentity); the rest does.
    let server = Server::start().await;
    let me = server.kura("GetCallerIdentity", "{}").await.assert_ok();
    assert!(me["Arn"].as_str().unwrap().ends_with(":root"), "{me}");
    assert_eq!(me["Account"].as_str().map(str::len), Some(12));

    server
        .kura(
            "CreateUser",
            &json!({"UserName": "carol", "Tags": [{"Key": "team", "Value": "a"}]}).to_string(),
        )
        .await
        .assert_ok();
    server
        .kura("CreateUser", r#"{"UserName": "carol"}"#)
        .await
        .assert_error("ResourceExistsException");
    server
        .kura("CreateUser", r#"{"UserName": "bad name!"}"#)
        .await
        .assert_error("ValidationException");
    server
        .kura("CreateUser", r#"{"UserName": "root"}"#)
        .await
        .assert_error("InvalidParameterException");
    let users = server.kura("ListUsers", "{}").await.assert_ok();
    let names: Vec<&str> = users["Users"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["UserName"].as_str())
        .collect();
    assert!(
        names.contains(&"carol") && names.contains(&"root"),
        "{users}"
    );

    // Two keys at most; an imported key works as given.
    server
        .kura("CreateAccessKey", r#"{"UserName": "carol"}"#)
        .await
        .assert_ok();
    let imported = server.kura("CreateAccessKey", &json!({"UserName": "carol",
        "AccessKeyId": "AKIAIMPORTEDKEY00001", "SecretAccessKey": "imported-secret-key-from-aws-0000000000"}).to_string()).await.assert_ok();
    assert_eq!(imported["AccessKey"]["AccessKeyId"], "AKIAIMPORTEDKEY00001");
    server
        .kura("CreateAccessKey", r#"{"UserName": "carol"}"#)
        .await
        .assert_error("LimitExceededException");
    put_policy(
        &server,
        "carol",
        "ident",
        json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "kura:ListAccessKeys", "Resource": "*"}]}),
    )
    .await;
    let carol = server
        .raw_as(
            "AKIAIMPORTEDKEY00001",
            "imported-secret-key-from-aws-0000000000",
            "Kura.GetCallerIdentity",
            "{}",
        )
        .await
        .assert_ok();
    assert!(carol["Arn"].as_str().unwrap().ends_with(":user/carol"));
    let own_keys = server
        .raw_as(
            "AKIAIMPORTEDKEY00001",
            "imported-secret-key-from-aws-0000000000",
            "Kura.ListAccessKeys",
            "{}",
        )
        .await
        .assert_ok();
    assert_eq!(
        own_keys["AccessKeyMetadata"].as_array().map(Vec::len),
        Some(2)
    );

    // Policies: validated on write, with the faulty element named.
    let msg = server.kura("PutUserPolicy", &json!({"UserName": "carol", "PolicyName": "bad",
        "PolicyDocument": json!({"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]}).to_string()}).to_string())
        .await.assert_error("MalformedPolicyDocumentException");
    assert!(msg.contains("Effect"), "{msg}");
    let listed = server
        .kura("ListUserPolicies", r#"{"UserName": "carol"}"#)
        .await
        .assert_ok();
    assert_eq!(listed["PolicyNames"], json!(["ident"]));
    let got = server
        .kura(
            "GetUserPolicy",
            r#"{"UserName": "carol", "PolicyName": "ident"}"#,
        )
        .await
        .assert_ok();
    assert!(
        got["PolicyDocument"]
            .as_str()
            .unwrap()
            .contains("kura:ListAccessKeys")
    );
    server
        .kura(
            "DeleteUserPolicy",
            r#"{"UserName": "carol", "PolicyName": "ident"}"#,
        )
        .await
        .assert_ok();
    server
        .raw_as(
            "AKIAIMPORTEDKEY00001",
            "imported-secret-key-from-aws-0000000000",
            "Kura.ListAccessKeys",
            "{}",
        )
        .await
        .assert_error("AccessDeniedException");

    server
        .kura("DeleteUser", r#"{"UserName": "carol"}"#)
        .await
        .assert_ok();
    server
        .raw_as(
            "AKIAIMPORTEDKEY00001",
            "imported-secret-key-from-aws-0000000000",
            "Kura.GetCallerIdentity",
            "{}",
        )
        .await
        .assert_error("UnrecognizedClientException");
    server
        .kura("DeleteUser", r#"{"UserName": "carol"}"#)
        .await
        .assert_error("ResourceNotFoundException");
}

#[tokio::test]
async fn kura_access_key_rotation_replaces_a_users_key_and_the_old_one_stops_working() {
    let server = Server::start().await;
    let root = server.client().await;
    create_plain(&root, "app/config", "cfg").await;
    let (app, old_id, old_secret) = user_client(&server, "app", json!([])).await;
    put_policy(
        &server,
        "app",
        "read",
        json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]}),
    )
    .await;
    assert_eq!(get_string(&app, "app/config").await, "cfg");
    let value = json!({"UserName": "app", "AccessKeyId": old_id, "SecretAccessKey": old_secret});
    let arn = create_plain(&root, "keys/app", &value.to_string()).await;
    let body =
        json!({"SecretId": "keys/app", "RotationLambdaARN": lambda_arn(&arn, "kura-access-key")});
    server
        .raw("RotateSecret", &body.to_string(), SignMode::Root)
        .await
        .assert_ok();
    wait_rotation_succeeded(&server, "keys/app").await;

    let now: Value = serde_json::from_str(&get_string(&root, "keys/app").await).unwrap();
    let (new_id, new_secret) = (
        now["AccessKeyId"].as_str().unwrap(),
        now["SecretAccessKey"].as_str().unwrap(),
    );
    assert_ne!(new_id, old_id);
    assert_eq!(now["UserName"], "app");
    let fresh = server.client_with(new_id, new_secret).await;
    assert_eq!(
        get_string(&fresh, "app/config").await,
        "cfg",
        "the new key works"
    );
    let e = api_err(app.get_secret_value().secret_id("app/config").send().await);
    assert_eq!(
        e.code, "UnrecognizedClientException",
        "the old key is gone: {e:?}"
    );
    let keys = server
        .kura("ListAccessKeys", r#"{"UserName": "app"}"#)
        .await
        .assert_ok();
    assert_eq!(keys["AccessKeyMetadata"].as_array().map(Vec::len), Some(1));
    assert_eq!(keys["AccessKeyMetadata"][0]["AccessKeyId"], new_id);
    assert!(!server.log().contains(new_secret) && !server.log().contains(&old_secret));
}

/// With `previous_key_ttl` the replaced key keeps working until then and is refused as expired
/// after; with `key_ttl` each new key expires, and a schedule longer than that is refused.
#[tokio::test]
async fn kura_access_key_rotation_keeps_the_replaced_key_for_previous_key_ttl() {
    let server = Server::start_with(&["--test-clock"]).await;
    let root = server.client().await;
    let (_, old_id, old_secret) = user_client(&server, "svc", json!([])).await;
    let value = json!({"UserName": "svc", "AccessKeyId": old_id, "SecretAccessKey": old_secret,
        "key_ttl": "30d", "previous_key_ttl": "24h"});
    let arn = create_plain(&root, "keys/svc", &value.to_string()).await;
    let rotate = |days: i64| {
        json!({"SecretId": "keys/svc", "RotationLambdaARN": lambda_arn(&arn, "kura-access-key"),
            "RotationRules": {"AutomaticallyAfterDays": days}})
        .to_string()
    };
    let refused = server
        .raw("RotateSecret", &rotate(60), SignMode::Root)
        .await
        .assert_error("InvalidRequestException");
    assert!(
        refused.contains("(60d)") && refused.contains("(30d, its key_ttl)"),
        "{refused}"
    );
    server
        .raw("RotateSecret", &rotate(30), SignMode::Root)
        .await
        .assert_ok();
    wait_rotation_succeeded(&server, "keys/svc").await;

    let now: Value = serde_json::from_str(&get_string(&root, "keys/svc").await).unwrap();
    let new_id = now["AccessKeyId"].as_str().unwrap().to_string();
    let new_secret = now["SecretAccessKey"].as_str().unwrap().to_string();
    assert_ne!(new_id, old_id);
    assert_eq!(
        now["previous_key_ttl"], "24h",
        "the settings are kept: {now}"
    );
    let whoami = |id: String, secret: String| {
        let server = &server;
        async move {
            server
                .raw_as(&id, &secret, "Kura.GetCallerIdentity", "{}")
                .await
        }
    };
    // Both work: the old one until 24 hours from the rotation, the new one for 30 days.
    let me = whoami(old_id.clone(), old_secret.clone()).await.assert_ok();
    assert!(me["UserId"].as_str().unwrap().starts_with("AIDA"), "{me}");
    whoami(new_id.clone(), new_secret.clone()).await.assert_ok();
    let keys = server
        .kura("ListAccessKeys", r#"{"UserName": "svc"}"#)
        .await
        .assert_ok();
    let lifetime = |id: &str| {
        let k = keys["AccessKeyMetadata"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["AccessKeyId"] == id)
            .unwrap_or_else(|| panic!("{id} not listed: {keys}"));
        k["Expiration"].as_f64().unwrap()
    };
    assert!(
        (lifetime(&new_id) - lifetime(&old_id) - 29.0 * 86_400.0).abs() < 60.0,
        "{keys}"
    );

    server
        .kura(
            "AdvanceClock",
            &json!({"Seconds": 86_400 - 120}).to_string(),
        )
        .await
        .assert_ok();
    whoami(old_id.clone(), old_secret.clone()).await.assert_ok();
    server
        .kura("AdvanceClock", &json!({"Seconds": 240}).to_string())
        .await
        .assert_ok();
    let e = whoami(old_id.clone(), old_secret.clone())
        .await
        .assert_error("UnrecognizedClientException");
    assert!(e.contains("expired"), "{e}");
    whoami(new_id.clone(), new_secret.clone()).await.assert_ok();
    assert!(!server.log().contains(&new_secret) && !server.log().contains(&old_secret));
}

#[tokio::test]
async fn a_policy_can_limit_which_rotation_function_a_user_may_choose() {
    let server = Server::start().await;
    let root = server.client().await;
    let arn = create_plain(&root, "rot/limited", "v0-initial").await;
    let (erin, _, _) = user_client(&server, "erin", json!([])).await;
    let allowed = lambda_arn(&arn, "kura-password");
    put_policy(&server, "erin", "rotate-with-password-only", json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["secretsmanager:RotateSecret", "secretsmanager:DescribeSecret"], "Resource": "*",
         "Condition": {"ArnLikeIfExists": {"secretsmanager:RotationLambdaARN": allowed}}}]})).await;
    // The bare name counts as the full ARN.
    ok(erin
        .rotate_secret()
        .secret_id("rot/limited")
        .rotation_lambda_arn("kura-password")
        .send()
        .await);
    wait_rotation_succeeded(&server, "rot/limited").await;
    let e = api_err(
        erin.rotate_secret()
            .secret_id("rot/limited")
            .rotation_lambda_arn(lambda_arn(&arn, "kura-postgres-single-user"))
            .send()
            .await,
    );
    assert_eq!(e.code, "AccessDeniedException", "{e:?}");
    assert!(e.message.contains("secretsmanager:RotateSecret"));
}
