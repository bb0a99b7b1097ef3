//! Named keys end to end: Kura.CreateKey / DescribeKey / ListKeys, secrets under different
//! keys named by id, ARN, alias or alias ARN, RotateKey under read load with the background
//! re-wrap (resumed after a kill -9), key policies deciding kms:Decrypt and
//! kms:GenerateDataKey, and a key created on one node of a PostgreSQL cluster used on another.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::Client;
use common::postgres::Database;
use common::*;
use serde_json::{Value, json};

async fn create_key(server: &Server, body: Value) -> Value {
    server
        .kura("CreateKey", &body.to_string())
        .await
        .assert_ok()["KeyMetadata"]
        .clone()
}

async fn describe_key(server: &Server, key_id: &str) -> Value {
    server
        .kura("DescribeKey", &json!({ "KeyId": key_id }).to_string())
        .await
        .assert_ok()["KeyMetadata"]
        .clone()
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

async fn create_under(client: &Client, name: &str, value: &str, kms: &str) -> String {
    remember_value(value);
    client
        .create_secret()
        .name(name)
        .secret_string(value)
        .kms_key_id(kms)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateSecret {name} under {kms}: {e:?}"))
        .arn()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn keys_are_created_described_listed_and_named_by_id_arn_alias_or_alias_arn() {
    let server = Server::start().await;
    let client = server.client().await;

    let a = create_key(
        &server,
        json!({"Alias": "alias/team-a", "Description": "team A's secrets",
               "Tags": [{"Key": "team", "Value": "a"}]}),
    )
    .await;
    let b = create_key(&server, json!({"Alias": "alias/team-b"})).await;
    let (a_id, a_arn) = (s(&a["KeyId"]), s(&a["Arn"]));
    let (b_id, b_arn) = (s(&b["KeyId"]), s(&b["Arn"]));
    assert_ne!(a_id, b_id);
    assert!(
        a_arn.starts_with("arn:aws:kms:") && a_arn.ends_with(&format!(":key/{a_id}")),
        "{a}"
    );
    assert_eq!(a["Alias"], "alias/team-a");
    assert_eq!(a["Description"], "team A's secrets");
    assert_eq!(a["CurrentVersion"], 1);
    assert_eq!(a["KeyState"], "Enabled");
    assert!(a["CreationDate"].as_f64().unwrap() > 1.0e9, "{a}");
    // The account in the key's ARN is the one secrets' ARNs carry.
    let account = a_arn.split(':').nth(4).unwrap().to_string();

    // DescribeKey by every form names the same key.
    let alias_arn = a_arn.replace(&format!("key/{a_id}"), "alias/team-a");
    for form in [&a_id, &a_arn, &"alias/team-a".to_string(), &alias_arn] {
        assert_eq!(
            describe_key(&server, form).await["KeyId"],
            a_id.as_str(),
            "{form}"
        );
    }
    let default = describe_key(&server, "alias/kura/default").await;
    assert_eq!(default["Alias"], "alias/kura/default");

    // ListKeys pages one key at a time through the default key and the two created.
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut body = json!({"MaxResults": 1});
        if let Some(t) = &next {
            body["NextToken"] = json!(t);
        }
        let page = server.kura("ListKeys", &body.to_string()).await.assert_ok();
        let keys = page["Keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{page}");
        seen.push(s(&keys[0]["KeyId"]));
        match page["NextToken"].as_str() {
            Some(t) => next = Some(t.to_string()),
            None => break,
        }
    }
    seen.sort();
    let mut want = vec![a_id.clone(), b_id.clone(), s(&default["KeyId"])];
    want.sort();
    assert_eq!(seen, want);
    server
        .kura("ListKeys", &json!({"NextToken": "forged"}).to_string())
        .await
        .assert_error("InvalidNextTokenException");

    // Secrets under the two keys, named four ways; DescribeSecret shows KmsKeyId as given.
    let values: Vec<(String, String, String)> = vec![
        (
            "keys/by-alias".into(),
            "alias/team-a".into(),
            format!("value-by-alias-{}", unique_suffix()),
        ),
        (
            "keys/by-arn".into(),
            b_arn.clone(),
            format!("value-by-arn-{}", unique_suffix()),
        ),
        (
            "keys/by-id".into(),
            b_id.clone(),
            format!("value-by-id-{}", unique_suffix()),
        ),
        (
            "keys/by-alias-arn".into(),
            alias_arn.clone(),
            format!("value-by-alias-arn-{}", unique_suffix()),
        ),
    ];
    for (name, kms, value) in &values {
        create_under(&client, name, value, kms).await;
        assert_eq!(get_string(&client, name).await, *value);
        let d = client
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .unwrap();
        assert_eq!(d.kms_key_id(), Some(kms.as_str()), "{name}");
    }
    // A secret under the default key shows no KmsKeyId, as on AWS.
    create_plain(
        &client,
        "keys/default",
        &format!("default-value-{}", unique_suffix()),
    )
    .await;
    let d = client
        .describe_secret()
        .secret_id("keys/default")
        .send()
        .await
        .unwrap();
    assert_eq!(d.kms_key_id(), None);

    // The keys really are different: rotating A leaves B at version 1.
    let rotated = server
        .kura("RotateKey", &json!({"KeyId": "alias/team-a"}).to_string())
        .await
        .assert_ok();
    assert_eq!(rotated["KeyMetadata"]["CurrentVersion"], 2);
    assert_eq!(describe_key(&server, &b_id).await["CurrentVersion"], 1);
    for (name, _, value) in &values {
        assert_eq!(get_string(&client, name).await, *value);
    }

    // UpdateSecret moves a secret to another key with its next value.
    let moved = format!("moved-value-{}", unique_suffix());
    remember_value(&moved);
    client
        .update_secret()
        .secret_id("keys/default")
        .kms_key_id("alias/team-b")
        .secret_string(&moved)
        .send()
        .await
        .unwrap();
    assert_eq!(get_string(&client, "keys/default").await, moved);
    let d = client
        .describe_secret()
        .secret_id("keys/default")
        .send()
        .await
        .unwrap();
    assert_eq!(d.kms_key_id(), Some("alias/team-b"));

    // Mistakes get clear errors.
    let e = api_err(
        client
            .create_secret()
            .name("keys/unknown")
            .secret_string("unknown-key-value")
            .kms_key_id("alias/nobody")
            .send()
            .await,
    );
    assert_eq!(e.code, "InvalidParameterException", "{e:?}");
    assert!(
        e.message.contains("alias/nobody") && e.message.contains("does not exist"),
        "{e:?}"
    );
    let e = api_err(
        client
            .create_secret()
            .name("keys/unknown-arn")
            .secret_string("unknown-key-value")
            .kms_key_id(format!(
                "arn:aws:kms:us-east-1:{account}:key/00000000-0000-0000-0000-000000000000"
            ))
            .send()
            .await,
    );
    assert_eq!(e.code, "InvalidParameterException", "{e:?}");
    let m = server
        .kura("CreateKey", &json!({"Alias": "alias/team-a"}).to_string())
        .await
        .assert_error("ResourceExistsException");
    assert!(m.contains("alias/team-a"), "{m}");
    for bad in [
        "team-c",
        "alias/",
        "alias/aws/x",
        "alias/kura/x",
        "alias/with space",
    ] {
        server
            .kura("CreateKey", &json!({"Alias": bad}).to_string())
            .await
            .assert_error("ValidationException");
    }
    server
        .kura(
            "CreateKey",
            &json!({"Policy": {"Statement": "no"}}).to_string(),
        )
        .await
        .assert_error("MalformedPolicyDocumentException");
    let m = server
        .kura("DescribeKey", &json!({"KeyId": "alias/nobody"}).to_string())
        .await
        .assert_error("ResourceNotFoundException");
    assert!(m.contains("alias/nobody"), "{m}");
    server
        .kura("DescribeKey", "{}")
        .await
        .assert_error("InvalidParameterException");

    // Key operations are audited like any other, under the key's ARN.
    let events = server
        .kura(
            "LookupAuditEvents",
            &json!({"Action": "kura:CreateKey", "Outcome": "Success"}).to_string(),
        )
        .await
        .assert_ok();
    let resources: Vec<String> = events["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| s(&e["Resource"]))
        .collect();
    assert!(
        resources.contains(&a_arn) && resources.contains(&b_arn),
        "{events}"
    );
    let events = server
        .kura(
            "LookupAuditEvents",
            &json!({"Action": "kura:RotateKey"}).to_string(),
        )
        .await
        .assert_ok();
    assert_eq!(events["Events"][0]["Resource"], a_arn.as_str(), "{events}");

    // The keys and their use survive a restart.
    let server = server.restart().await;
    let client = server.client().await;
    for (name, _, value) in &values {
        assert_eq!(get_string(&client, name).await, *value);
    }
    assert_eq!(
        describe_key(&server, "alias/team-a").await["CurrentVersion"],
        2
    );
}

/// Reads every secret in a loop until told to stop; returns (reads, errors).
fn readers(
    client: Client,
    secrets: Arc<Vec<(String, String)>>,
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicUsize>,
    errors: Arc<std::sync::Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut i = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let n = i % secrets.len();
            let (name, want) = &secrets[n];
            i += 1;
            // The test writes `rewrap-new-<n>-…` over `rewrap-value-<n>-…` while reading.
            let newer = format!("rewrap-new-{n}-");
            let fine = |v: &str| v == want || v.starts_with(&newer);
            match client.get_secret_value().secret_id(name).send().await {
                Ok(v) if v.secret_string().is_some_and(fine) => {}
                Ok(v) => errors
                    .lock()
                    .unwrap()
                    .push(format!("{name}: wrong value {:?}", v.version_id())),
                Err(e) => errors.lock().unwrap().push(format!("{name}: {e:?}")),
            }
            reads.fetch_add(1, Ordering::Relaxed);
        }
    })
}

fn rewrap(meta: &Value) -> (String, i64, i64, i64) {
    let r = &meta["RewrapStatus"];
    (
        s(&r["State"]),
        r["TargetVersion"].as_i64().unwrap(),
        r["Done"].as_i64().unwrap(),
        r["Remaining"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn rotate_key_under_read_load_rewraps_in_the_background_and_resumes_after_a_kill() {
    let tmp = tempfile::Builder::new()
        .prefix("kura-test-")
        .tempdir()
        .unwrap();
    // Five data keys per batch, 400 ms apart: slow enough to stop the server in the middle.
    let env = [("KURA_TEST_REWRAP_PACE", "5,400")];
    let server = Server::start_in_with_env(tmp, &[], &env).await;
    let client = server.client().await;
    let mut secrets = Vec::new();
    for i in 0..40 {
        let name = format!("rewrap/s{i:02}");
        let value = format!("rewrap-value-{i}-{}", unique_suffix());
        create_plain(&client, &name, &value).await;
        secrets.push((name, value));
    }
    let before = describe_key(&server, "alias/kura/default").await;
    assert_eq!(before["CurrentVersion"], 1);
    assert!(before.get("RewrapStatus").is_none(), "{before}");

    let secrets = Arc::new(secrets);
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        tasks.push(readers(
            server.client().await,
            secrets.clone(),
            stop.clone(),
            reads.clone(),
            errors.clone(),
        ));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before_rotation = reads.load(Ordering::Relaxed);

    // RotateKey without KeyId rotates the default key.
    let rotated = server.kura("RotateKey", "{}").await.assert_ok()["KeyMetadata"].clone();
    assert_eq!(rotated["CurrentVersion"], 2);
    assert_eq!(rotated["Alias"], "alias/kura/default");
    let (state, target, done, remaining) = rewrap(&rotated);
    assert_eq!((state.as_str(), target), ("InProgress", 2));
    // Every value plus kura's own data keys (the root access key) wait under version 1.
    let total = done + remaining;
    assert!(total > 40, "{rotated}");

    // New values are sealed under version 2 at once: they add nothing to what is left.
    let mut written = Vec::new();
    for i in 0..20 {
        let name = &secrets[i].0;
        let value = format!("rewrap-new-{i}-{}", unique_suffix());
        put_string(&client, name, &value, &token(100 + i as u64)).await;
        written.push((name.clone(), value));
    }
    let (state, _, done, remaining) = rewrap(&describe_key(&server, "alias/kura/default").await);
    assert_eq!(state, "InProgress");
    assert!(
        done + remaining <= total + 5,
        "values written after RotateKey were sealed under the old version: {done} done + {remaining} left > {total}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks.drain(..) {
        t.await.unwrap();
    }
    let during = reads.load(Ordering::Relaxed) - before_rotation;
    assert!(during > 20, "only {during} reads during the rotation");
    assert!(
        errors.lock().unwrap().is_empty(),
        "readers failed: {:?}",
        errors.lock().unwrap()
    );

    // Killed in the middle of the re-wrap...
    let (state, _, done, remaining) = rewrap(&describe_key(&server, "alias/kura/default").await);
    assert_eq!(state, "InProgress", "the re-wrap finished before the kill");
    assert!(done > 0 && remaining > 0, "{done} done, {remaining} left");
    let tmp = server.kill().await;

    // ...it resumes after the restart and finishes; every value reads throughout.
    let server = Server::start_in_with_env(tmp, &[], &env).await;
    let client = server.client().await;
    let mut current: Vec<(String, String)> = secrets.to_vec();
    for (name, value) in &written {
        if let Some(e) = current.iter_mut().find(|(n, _)| n == name) {
            e.1 = value.clone();
        }
    }
    let current = Arc::new(current);
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let task = readers(
        server.client().await,
        current.clone(),
        stop.clone(),
        reads.clone(),
        errors.clone(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let done_meta = loop {
        let meta = describe_key(&server, "alias/kura/default").await;
        if rewrap(&meta).0 == "Complete" {
            break meta;
        }
        assert!(
            Instant::now() < deadline,
            "the re-wrap did not finish: {meta}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    stop.store(true, Ordering::Relaxed);
    task.await.unwrap();
    assert!(
        errors.lock().unwrap().is_empty(),
        "readers failed: {:?}",
        errors.lock().unwrap()
    );
    let (_, target, _, remaining) = rewrap(&done_meta);
    assert_eq!((target, remaining), (2, 0), "{done_meta}");
    for (name, value) in current.iter() {
        assert_eq!(get_string(&client, name).await, *value);
    }
    // The root access key was re-wrapped too: kura still authenticates it (this very call),
    // and a second rotation starts from version 2.
    let again = server.kura("RotateKey", "{}").await.assert_ok();
    assert_eq!(again["KeyMetadata"]["CurrentVersion"], 3);
    // The re-wrap's own record is in the audit trail.
    let events = server
        .kura(
            "LookupAuditEvents",
            &json!({"Action": "job:RewrapKey"}).to_string(),
        )
        .await
        .assert_ok();
    assert!(!events["Events"].as_array().unwrap().is_empty(), "{events}");
}

struct User {
    arn: String,
    akid: String,
    secret: String,
    client: Client,
}

async fn user(server: &Server, name: &str, statements: Value) -> User {
    let created = server
        .kura("CreateUser", &json!({"UserName": name}).to_string())
        .await
        .assert_ok();
    let (akid, secret) = create_access_key(server, name).await;
    remember_value(&secret);
    put_policy(server, name, statements).await;
    User {
        arn: s(&created["User"]["Arn"]),
        client: server.client_with(&akid, &secret).await,
        akid,
        secret,
    }
}

async fn put_policy(server: &Server, name: &str, statements: Value) {
    let doc = json!({"Version": "2012-10-17", "Statement": statements});
    server
        .kura(
            "PutUserPolicy",
            &json!({"UserName": name, "PolicyName": "p", "PolicyDocument": doc}).to_string(),
        )
        .await
        .assert_ok();
}

fn secrets_only() -> Value {
    json!([{"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"}])
}

#[tokio::test]
async fn the_key_policy_decides_who_may_encrypt_and_decrypt_under_a_key() {
    let server = Server::start().await;
    let root = server.client().await;
    let alice = user(&server, "alice", secrets_only()).await;
    let bob = user(&server, "bob", secrets_only()).await;
    let account = alice.arn.split(':').nth(4).unwrap().to_string();

    // Only alice is named in the key policy.
    let key = create_key(
        &server,
        json!({"Alias": "alias/alice-only", "Policy": {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": alice.arn},
                           "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*"}]}}),
    )
    .await;
    let key_arn = s(&key["Arn"]);
    let value = format!("alice-only-value-{}", unique_suffix());
    create_under(&root, "policy/alice", &value, "alias/alice-only").await;

    assert_eq!(get_string(&alice.client, "policy/alice").await, value);
    let next = format!("alice-next-value-{}", unique_suffix());
    put_string(&alice.client, "policy/alice", &next, &token(1)).await;
    assert_eq!(get_string(&alice.client, "policy/alice").await, next);

    // bob may use the secret by his identity policy, but the key policy does not name him.
    let e = api_err(
        bob.client
            .get_secret_value()
            .secret_id("policy/alice")
            .send()
            .await,
    );
    assert_eq!(e.code, "AccessDeniedException", "{e:?}");
    assert!(
        e.message.contains("kms:Decrypt") && e.message.contains(&key_arn),
        "{e:?}"
    );
    let e = api_err(
        bob.client
            .put_secret_value()
            .secret_id("policy/alice")
            .secret_string("bob-tried-this-value")
            .send()
            .await,
    );
    assert_eq!(e.code, "AccessDeniedException", "{e:?}");
    assert!(e.message.contains("kms:GenerateDataKey"), "{e:?}");
    let e = api_err(
        bob.client
            .create_secret()
            .name("policy/bob")
            .secret_string("bob-tried-this-value")
            .kms_key_id(&key_arn)
            .send()
            .await,
    );
    assert_eq!(e.code, "AccessDeniedException", "{e:?}");
    assert!(e.message.contains("kms:GenerateDataKey"), "{e:?}");
    // BatchGetSecretValue reports it per secret.
    let batch = bob
        .client
        .batch_get_secret_value()
        .secret_id_list("policy/alice")
        .send()
        .await
        .unwrap();
    assert!(batch.secret_values().is_empty());
    assert_eq!(
        batch.errors()[0].error_code(),
        Some("AccessDeniedException")
    );
    // Metadata needs no key: bob may still describe the secret.
    bob.client
        .describe_secret()
        .secret_id("policy/alice")
        .send()
        .await
        .unwrap();
    // The default key has no policy: bob uses secrets under it freely.
    let plain = format!("bob-default-value-{}", unique_suffix());
    create_plain(&bob.client, "policy/bob-default", &plain).await;
    assert_eq!(get_string(&bob.client, "policy/bob-default").await, plain);

    // A key policy that delegates to the account leaves the decision to identity policies:
    // bob's allows only secretsmanager:*, so he is still refused until it allows kms:Decrypt.
    server
        .kura(
            "PutKeyPolicy",
            &json!({"KeyId": "alias/alice-only", "Policy": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{account}:root")},
                               "Action": "kms:*", "Resource": "*"}]}})
            .to_string(),
        )
        .await
        .assert_ok();
    let e = api_err(
        bob.client
            .get_secret_value()
            .secret_id("policy/alice")
            .send()
            .await,
    );
    assert_eq!(e.code, "AccessDeniedException", "{e:?}");
    assert!(e.message.contains("kms:Decrypt"), "{e:?}");
    put_policy(
        &server,
        "bob",
        json!([
            {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
            {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": key_arn}
        ]),
    )
    .await;
    assert_eq!(get_string(&bob.client, "policy/alice").await, next);
    // ...but not yet to encrypt, and alice (no kms:* in her identity policy) lost access.
    let e = api_err(
        bob.client
            .put_secret_value()
            .secret_id("policy/alice")
            .secret_string("bob-tried-this-value")
            .send()
            .await,
    );
    assert!(e.message.contains("kms:GenerateDataKey"), "{e:?}");
    let e = api_err(
        alice
            .client
            .get_secret_value()
            .secret_id("policy/alice")
            .send()
            .await,
    );
    assert_eq!(e.code, "AccessDeniedException", "{e:?}");

    // A key created without a policy gets AWS's default one (delegation to IAM).
    let open = create_key(&server, json!({"Alias": "alias/iam-decides"})).await;
    assert!(s(&open["Policy"]).contains(":root"), "{open}");
    let e = api_err(
        alice
            .client
            .create_secret()
            .name("policy/alice-iam")
            .secret_string("alice-tried-this-value")
            .kms_key_id("alias/iam-decides")
            .send()
            .await,
    );
    assert_eq!(e.code, "AccessDeniedException", "{e:?}");

    // Managing keys is authorised like any Kura operation.
    let r = server
        .raw_as(
            &bob.akid,
            &bob.secret,
            "Kura.RotateKey",
            &json!({"KeyId": "alias/alice-only"}).to_string(),
        )
        .await;
    let m = r.assert_error("AccessDeniedException");
    assert!(m.contains("kura:RotateKey"), "{m}");
}

/// A node's directory: `data/` (0700), with a copy of the cluster's root.key when joining.
fn node_dir(root_key: Option<&std::path::Path>) -> tempfile::TempDir {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let tmp = tempfile::Builder::new()
        .prefix("kura-node-")
        .tempdir()
        .expect("create temp dir");
    let data = tmp.path().join("data");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&data)
        .unwrap();
    if let Some(key) = root_key {
        let copy = data.join("root.key");
        std::fs::copy(key, &copy).expect("copy root.key");
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    tmp
}

#[tokio::test]
async fn a_key_created_on_one_node_is_used_on_another() {
    let db = Database::create();
    let a = Server::start_node(node_dir(None), &db.url, &db.url, &[]).await;
    let key_file = a.data_dir.join("root.key");
    let mut b = Server::start_node(node_dir(Some(&key_file)), &db.url, &db.url, &[]).await;
    b.use_credentials(a.credentials());
    let (ca, cb) = (a.client().await, b.client().await);

    let key = create_key(&a, json!({"Alias": "alias/cluster-team"})).await;
    let key_id = s(&key["KeyId"]);
    // Node B learns of it (on its first use, or from the announcement).
    let value = format!("cluster-key-value-{}", unique_suffix());
    create_under(&cb, "cluster/keyed", &value, "alias/cluster-team").await;
    assert_eq!(get_string(&ca, "cluster/keyed").await, value);
    assert_eq!(
        describe_key(&b, &key_id).await["Alias"],
        "alias/cluster-team"
    );

    // Rotated on A: B seals under the new version and A opens it; the re-wrap finishes.
    let rotated = a
        .kura("RotateKey", &json!({"KeyId": key_id}).to_string())
        .await
        .assert_ok();
    assert_eq!(rotated["KeyMetadata"]["CurrentVersion"], 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while describe_key(&b, &key_id).await["CurrentVersion"] != 2 {
        assert!(Instant::now() < deadline, "node B never saw version 2");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let next = format!("cluster-key-next-{}", unique_suffix());
    put_string(&cb, "cluster/keyed", &next, &token(2)).await;
    assert_eq!(get_string(&ca, "cluster/keyed").await, next);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let meta = describe_key(&a, &key_id).await;
        let (state, target, _, remaining) = rewrap(&meta);
        if state == "Complete" {
            assert_eq!((target, remaining), (2, 0), "{meta}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the re-wrap did not finish: {meta}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        get_version_string(&cb, "cluster/keyed", &token(2)).await,
        next
    );
    assert_eq!(
        get_stage(&ca, "cluster/keyed", "AWSPREVIOUS").await.1,
        value
    );
    drop((a, b));
    drop(db);
}

#[tokio::test]
async fn a_key_is_deleted_after_its_window_only_when_nothing_uses_it() {
    let server = Server::start_with(&["--test-clock"]).await;
    let client = server.client().await;
    let used = create_key(&server, json!({"Alias": "alias/used"})).await;
    let unused = create_key(&server, json!({"Alias": "alias/unused"})).await;
    create_under(
        &client,
        "delete/keyed",
        &format!("keyed-value-{}", unique_suffix()),
        &s(&used["Arn"]),
    )
    .await;

    // In use: refused, saying why. The default key is never deleted.
    let m = server
        .kura(
            "ScheduleKeyDeletion",
            &json!({"KeyId": "alias/used", "PendingWindowInDays": 7}).to_string(),
        )
        .await
        .assert_error("InvalidRequestException");
    assert!(m.contains("in use"), "{m}");
    server
        .kura(
            "ScheduleKeyDeletion",
            &json!({"KeyId": "alias/kura/default"}).to_string(),
        )
        .await
        .assert_error("InvalidRequestException");
    server
        .kura(
            "ScheduleKeyDeletion",
            &json!({"KeyId": "alias/unused", "PendingWindowInDays": 3}).to_string(),
        )
        .await
        .assert_error("ValidationException");

    // Unused: pending for the window, refused for new values, and cancellable.
    let pending = server
        .kura(
            "ScheduleKeyDeletion",
            &json!({"KeyId": "alias/unused", "PendingWindowInDays": 7}).to_string(),
        )
        .await
        .assert_ok()["KeyMetadata"]
        .clone();
    assert_eq!(pending["KeyState"], "PendingDeletion");
    let when = pending["DeletionDate"].as_f64().unwrap();
    assert!(
        (when - pending["CreationDate"].as_f64().unwrap() - 7.0 * 86_400.0).abs() < 60.0,
        "{pending}"
    );
    let e = api_err(
        client
            .create_secret()
            .name("delete/late")
            .secret_string("late-secret-value")
            .kms_key_id("alias/unused")
            .send()
            .await,
    );
    assert_eq!(e.code, "InvalidRequestException", "{e:?}");
    assert!(e.message.contains("pending deletion"), "{e:?}");
    let back = server
        .kura(
            "CancelKeyDeletion",
            &json!({"KeyId": "alias/unused"}).to_string(),
        )
        .await
        .assert_ok();
    assert_eq!(back["KeyMetadata"]["KeyState"], "Enabled");
    assert!(back["KeyMetadata"].get("DeletionDate").is_none());
    server
        .kura(
            "ScheduleKeyDeletion",
            &json!({"KeyId": "alias/unused", "PendingWindowInDays": 7}).to_string(),
        )
        .await
        .assert_ok();

    // Six days on it is still there; past the window it is gone, and its alias is free.
    server
        .kura("AdvanceClock", &json!({"Seconds": 6 * 86_400}).to_string())
        .await
        .assert_ok();
    server
        .kura("DescribeKey", &json!({"KeyId": "alias/unused"}).to_string())
        .await
        .assert_ok();
    server
        .kura("AdvanceClock", &json!({"Seconds": 2 * 86_400}).to_string())
        .await
        .assert_ok();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = server
            .kura(
                "DescribeKey",
                &json!({"KeyId": s(&unused["KeyId"])}).to_string(),
            )
            .await;
        if r.status == 400 {
            r.assert_error("ResourceNotFoundException");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the key was not deleted: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    create_key(&server, json!({"Alias": "alias/unused"})).await;
    // The key in use was never touched.
    assert_eq!(
        describe_key(&server, "alias/used").await["KeyState"],
        "Enabled"
    );
    get_string(&client, "delete/keyed").await;
}
