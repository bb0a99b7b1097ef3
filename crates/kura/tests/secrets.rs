//! CreateSecret, GetSecretValue, DescribeSecret, ListSecrets.

mod common;

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::primitives::Blob;
use common::*;

const NAME: &str = "app/db-password";

/// A server, a root client and one string secret `NAME` = "value-one-3f9a1c" created with `token(1)`.
async fn setup() -> (Server, Client, String) {
    let server = Server::start().await;
    let client = server.client().await;
    let (arn, _) = create_string(&client, NAME, "value-one-3f9a1c", &token(1)).await;
    (server, client, arn)
}

#[tokio::test]
async fn create_string_secret_returns_arn_and_reads_back() {
    let server = Server::start().await;
    let client = server.client().await;
    let out = ok(client
        .create_secret()
        .name(NAME)
        .secret_string("hunter2-hunter2")
        .send()
        .await);
    assert_eq!(out.name(), Some(NAME));
    let arn = out.arn().unwrap();
    arn_suffix(arn, NAME);
    let version = out.version_id().expect("VersionId");
    assert_eq!(
        version.len(),
        36,
        "the SDK's UUID token must become the VersionId, got {version:?}"
    );

    let got = ok(client.get_secret_value().secret_id(NAME).send().await);
    assert_eq!(got.secret_string(), Some("hunter2-hunter2"));
    assert!(
        got.secret_binary().is_none(),
        "string secret answered a SecretBinary"
    );
    assert_eq!(got.arn(), Some(arn));
    assert_eq!(got.name(), Some(NAME));
    assert_eq!(got.version_id(), Some(version));
    assert_eq!(got.version_stages(), ["AWSCURRENT".to_string()]);
    assert_near(
        got.created_date(),
        now_secs(),
        600,
        "GetSecretValue CreatedDate",
    );
}

#[tokio::test]
async fn create_binary_secret_round_trips_every_byte() {
    let server = Server::start().await;
    let client = server.client().await;
    let mut bytes: Vec<u8> = (0..=255u8).collect();
    bytes.extend_from_slice(&[0x00, 0xFF, 0x00, 0xFF]);
    ok(client
        .create_secret()
        .name("bin")
        .secret_binary(Blob::new(bytes.clone()))
        .send()
        .await);

    let got = ok(client.get_secret_value().secret_id("bin").send().await);
    assert_eq!(
        got.secret_binary().map(|b| b.as_ref().to_vec()),
        Some(bytes)
    );
    assert!(
        got.secret_string().is_none(),
        "binary secret answered a SecretString"
    );
}

#[tokio::test]
async fn create_with_client_request_token_uses_it_as_version_id() {
    let (_server, client, _arn) = setup().await;
    let versions = list_versions(&client, NAME, false).await;
    assert_eq!(versions, stages_of(&[(&token(1), &["AWSCURRENT"])]));
    assert_eq!(
        get_version_string(&client, NAME, &token(1)).await,
        "value-one-3f9a1c"
    );
}

#[tokio::test]
async fn get_secret_value_by_name_full_arn_and_partial_arn() {
    let (_server, client, arn) = setup().await;
    assert_eq!(get_string(&client, NAME).await, "value-one-3f9a1c");
    assert_eq!(get_string(&client, &arn).await, "value-one-3f9a1c");
    assert_eq!(
        get_string(&client, &partial_arn(&arn)).await,
        "value-one-3f9a1c"
    );
}

#[tokio::test]
async fn get_secret_value_by_version_id_and_by_stage() {
    let (_server, client, _arn) = setup().await;
    put_string(&client, NAME, "value-two-8b2e4d", &token(2)).await;

    assert_eq!(
        get_string(&client, NAME).await,
        "value-two-8b2e4d",
        "default stage must be AWSCURRENT"
    );
    assert_eq!(
        get_version_string(&client, NAME, &token(1)).await,
        "value-one-3f9a1c"
    );
    assert_eq!(
        get_version_string(&client, NAME, &token(2)).await,
        "value-two-8b2e4d"
    );
    let (id, value, labels) = get_stage(&client, NAME, "AWSPREVIOUS").await;
    assert_eq!(
        (id, value, labels),
        (
            token(1),
            "value-one-3f9a1c".to_string(),
            vec!["AWSPREVIOUS".to_string()]
        )
    );
    let (id, value, _) = get_stage(&client, NAME, "AWSCURRENT").await;
    assert_eq!((id, value), (token(2), "value-two-8b2e4d".to_string()));
}

#[tokio::test]
async fn get_secret_value_with_matching_version_id_and_stage() {
    let (_server, client, _arn) = setup().await;
    put_string(&client, NAME, "value-two-8b2e4d", &token(2)).await;
    let out = ok(client
        .get_secret_value()
        .secret_id(NAME)
        .version_id(token(1))
        .version_stage("AWSPREVIOUS")
        .send()
        .await);
    assert_eq!(out.secret_string(), Some("value-one-3f9a1c"));
}

#[tokio::test]
async fn get_secret_value_with_version_id_and_stage_of_different_versions_fails() {
    let (_server, client, _arn) = setup().await;
    put_string(&client, NAME, "value-two-8b2e4d", &token(2)).await;
    let err = api_err(
        client
            .get_secret_value()
            .secret_id(NAME)
            .version_id(token(1))
            .version_stage("AWSCURRENT")
            .send()
            .await,
    );
    assert_eq!(err.status, 400, "{err:?}");
    // AWS's code and message for this (as LocalStack records them from AWS).
    assert_eq!(err.code, "InvalidRequestException", "{err:?}");
    assert!(
        err.message.starts_with(
            "You provided a VersionStage that is not associated to the provided VersionId."
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn get_missing_secret_is_not_found() {
    let (_server, client, arn) = setup().await;
    assert_api_err(
        client
            .get_secret_value()
            .secret_id("no-such-secret")
            .send()
            .await,
        "ResourceNotFoundException",
        Some(NOT_FOUND_MSG),
    );
    // A well-formed ARN of a secret that does not exist (same name, other suffix).
    let other = format!("{}-zzzzzz", partial_arn(&arn));
    assert_ne!(other, arn);
    assert_api_err(
        client.get_secret_value().secret_id(other).send().await,
        "ResourceNotFoundException",
        Some(NOT_FOUND_MSG),
    );
    assert_api_err(
        client
            .get_secret_value()
            .secret_id(NAME)
            .version_id(token(99))
            .send()
            .await,
        "ResourceNotFoundException",
        None,
    );
}

#[tokio::test]
async fn describe_secret_reports_all_fields() {
    let server = Server::start().await;
    let client = server.client().await;
    let before = now_secs();
    let created = ok(client
        .create_secret()
        .name(NAME)
        .description("the database password")
        .secret_string("value-one-3f9a1c")
        .client_request_token(token(1))
        .tags(tag("team", "payments"))
        .tags(tag("env", "prod"))
        .send()
        .await);

    let out = ok(client.describe_secret().secret_id(NAME).send().await);
    assert_eq!(out.arn(), created.arn());
    assert_eq!(out.name(), Some(NAME));
    assert_eq!(out.description(), Some("the database password"));
    assert_near(out.created_date(), before, 600, "CreatedDate");
    assert_near(out.last_changed_date(), before, 600, "LastChangedDate");
    assert!(out.deleted_date().is_none(), "DeletedDate on a live secret");
    // Never configured: AWS leaves RotationEnabled out.
    assert_eq!(out.rotation_enabled(), None);
    assert_eq!(
        describe_tags(&client, NAME).await,
        BTreeMap::from([
            ("env".to_string(), "prod".to_string()),
            ("team".to_string(), "payments".to_string())
        ])
    );
    assert_eq!(
        describe_stages(&client, NAME).await,
        stages_of(&[(&token(1), &["AWSCURRENT"])])
    );
}

#[tokio::test]
async fn describe_secret_by_arn_and_partial_arn() {
    let (_server, client, arn) = setup().await;
    for id in [arn.clone(), partial_arn(&arn)] {
        let out = ok(client.describe_secret().secret_id(&id).send().await);
        assert_eq!(out.arn(), Some(arn.as_str()), "DescribeSecret({id})");
        assert_eq!(out.name(), Some(NAME));
    }
}

#[tokio::test]
async fn list_secrets_paginates_over_every_secret_once() {
    let server = Server::start().await;
    let client = server.client().await;
    let names: Vec<String> = (0..5).map(|i| format!("list/secret-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        create_string(&client, name, "listed-value-77c1", &token(i as u64 + 1)).await;
    }

    let mut seen: Vec<String> = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = ok(client
            .list_secrets()
            .max_results(2)
            .set_next_token(next.take())
            .send()
            .await);
        pages += 1;
        assert!(
            out.secret_list().len() <= 2,
            "page of {} entries with MaxResults=2",
            out.secret_list().len()
        );
        for entry in out.secret_list() {
            let name = entry.name().expect("entry without Name").to_string();
            arn_suffix(entry.arn().expect("entry without ARN"), &name);
            let stages = entry
                .secret_versions_to_stages()
                .expect("entry without SecretVersionsToStages");
            let expected_token = token(names.iter().position(|n| *n == name).unwrap() as u64 + 1);
            assert_eq!(
                stages.get(&expected_token),
                Some(&vec!["AWSCURRENT".to_string()]),
                "{name}"
            );
            seen.push(name);
        }
        match out.next_token() {
            Some(t) => next = Some(t.to_string()),
            None => break,
        }
        assert!(pages < 10, "pagination does not terminate");
    }
    assert!(
        pages >= 3,
        "5 secrets at MaxResults=2 need at least 3 pages, got {pages}"
    );
    seen.sort();
    assert_eq!(seen, names);
}

#[tokio::test]
async fn list_secrets_entry_has_description_and_tags() {
    let server = Server::start().await;
    let client = server.client().await;
    ok(client
        .create_secret()
        .name(NAME)
        .description("desc")
        .secret_string("described-value-1d0e")
        .tags(tag("k", "v"))
        .send()
        .await);
    let out = ok(client.list_secrets().send().await);
    assert_eq!(out.secret_list().len(), 1);
    let entry = &out.secret_list()[0];
    assert_eq!(entry.name(), Some(NAME));
    assert_eq!(entry.description(), Some("desc"));
    assert_eq!(entry.tags().len(), 1);
    assert_eq!(entry.tags()[0].key(), Some("k"));
    assert_eq!(entry.tags()[0].value(), Some("v"));
    assert!(entry.deleted_date().is_none());
}
