//! Versions and staging labels: PutSecretValue, UpdateSecret, UpdateSecretVersionStage, ListSecretVersionIds.

mod common;

use aws_sdk_secretsmanager::Client;
use common::*;

const NAME: &str = "versioned";

/// A server, a root client, and `NAME` holding "versioned-value-1".."vN" written with tokens 1..N (N ≥ 1) through
/// CreateSecret + PutSecretValue.
async fn setup(n: u64) -> (Server, Client) {
    let server = Server::start().await;
    let client = server.client().await;
    create_string(&client, NAME, "versioned-value-1", &token(1)).await;
    for i in 2..=n {
        put_string(&client, NAME, &format!("versioned-value-{i}"), &token(i)).await;
    }
    (server, client)
}

async fn move_stage(client: &Client, stage: &str, to: Option<&str>, from: Option<&str>) {
    ok(client
        .update_secret_version_stage()
        .secret_id(NAME)
        .version_stage(stage)
        .set_move_to_version_id(to.map(String::from))
        .set_remove_from_version_id(from.map(String::from))
        .send()
        .await);
}

/// DescribeSecret and ListSecretVersionIds must agree on the labelled versions.
async fn assert_stages(client: &Client, expected: &[(&str, &[&str])]) {
    let expected = stages_of(expected);
    assert_eq!(
        describe_stages(client, NAME).await,
        expected,
        "DescribeSecret VersionIdsToStages"
    );
    assert_eq!(
        list_versions(client, NAME, false).await,
        expected,
        "ListSecretVersionIds"
    );
}

#[tokio::test]
async fn put_secret_value_moves_current_and_previous() {
    let (_server, client) = setup(2).await;
    let (t1, t2) = (token(1), token(2));
    assert_stages(&client, &[(&t1, &["AWSPREVIOUS"]), (&t2, &["AWSCURRENT"])]).await;
    assert_eq!(get_string(&client, NAME).await, "versioned-value-2");
    assert_eq!(
        get_stage(&client, NAME, "AWSPREVIOUS").await.1,
        "versioned-value-1"
    );
}

#[tokio::test]
async fn third_put_deprecates_the_oldest_version() {
    let (_server, client) = setup(3).await;
    let (t1, t2, t3) = (token(1), token(2), token(3));
    assert_stages(&client, &[(&t2, &["AWSPREVIOUS"]), (&t3, &["AWSCURRENT"])]).await;
    assert_eq!(
        list_versions(&client, NAME, true).await,
        stages_of(&[(&t1, &[]), (&t2, &["AWSPREVIOUS"]), (&t3, &["AWSCURRENT"])]),
        "IncludeDeprecated=true must list the unlabelled version"
    );
    // A deprecated version keeps its value and is still readable by id.
    assert_eq!(
        get_version_string(&client, NAME, &t1).await,
        "versioned-value-1"
    );
}

#[tokio::test]
async fn put_secret_value_returns_its_stages() {
    let (_server, client) = setup(1).await;
    let out = ok(client
        .put_secret_value()
        .secret_id(NAME)
        .secret_string("versioned-value-2")
        .client_request_token(token(2))
        .send()
        .await);
    assert_eq!(out.version_stages(), ["AWSCURRENT".to_string()]);
    assert_eq!(out.name(), Some(NAME));
}

#[tokio::test]
async fn put_with_custom_stage_does_not_move_current() {
    let (_server, client) = setup(1).await;
    let (t1, t2) = (token(1), token(2));
    put_string_staged(&client, NAME, "staged", &t2, &["custom"]).await;
    assert_stages(&client, &[(&t1, &["AWSCURRENT"]), (&t2, &["custom"])]).await;
    assert_eq!(get_string(&client, NAME).await, "versioned-value-1");
    assert_eq!(get_stage(&client, NAME, "custom").await.1, "staged");
}

#[tokio::test]
async fn put_with_custom_stage_moves_it_from_its_previous_version() {
    let (_server, client) = setup(1).await;
    let (t1, t2, t3) = (token(1), token(2), token(3));
    put_string_staged(&client, NAME, "a", &t2, &["custom"]).await;
    put_string_staged(&client, NAME, "b", &t3, &["custom"]).await;
    assert_stages(&client, &[(&t1, &["AWSCURRENT"]), (&t3, &["custom"])]).await;
    assert_eq!(
        list_versions(&client, NAME, true).await.get(&t2),
        Some(&vec![])
    );
}

#[tokio::test]
async fn update_secret_with_value_creates_a_version() {
    let (_server, client) = setup(1).await;
    let (t1, t2) = (token(1), token(2));
    let out = ok(client
        .update_secret()
        .secret_id(NAME)
        .secret_string("versioned-value-2")
        .client_request_token(&t2)
        .send()
        .await);
    assert_eq!(out.version_id(), Some(t2.as_str()));
    assert_stages(&client, &[(&t1, &["AWSPREVIOUS"]), (&t2, &["AWSCURRENT"])]).await;
    assert_eq!(get_string(&client, NAME).await, "versioned-value-2");
}

#[tokio::test]
async fn update_secret_description_only_creates_no_version() {
    let (_server, client) = setup(1).await;
    let t1 = token(1);
    let out = ok(client
        .update_secret()
        .secret_id(NAME)
        .description("new description")
        .send()
        .await);
    assert!(
        out.version_id().is_none(),
        "no version was created, yet VersionId = {:?}",
        out.version_id()
    );
    let described = ok(client.describe_secret().secret_id(NAME).send().await);
    assert_eq!(described.description(), Some("new description"));
    assert_stages(&client, &[(&t1, &["AWSCURRENT"])]).await;
    assert_eq!(list_versions(&client, NAME, true).await.len(), 1);
    assert_eq!(get_string(&client, NAME).await, "versioned-value-1");
}

#[tokio::test]
async fn moving_current_drags_previous_onto_the_version_it_left() {
    let (_server, client) = setup(3).await;
    let (t1, t2, t3) = (token(1), token(2), token(3));
    // Roll back to v1: AWSCURRENT 3 → 1, AWSPREVIOUS follows onto 3.
    move_stage(&client, "AWSCURRENT", Some(&t1), Some(&t3)).await;
    assert_stages(&client, &[(&t1, &["AWSCURRENT"]), (&t3, &["AWSPREVIOUS"])]).await;
    assert_eq!(
        list_versions(&client, NAME, true).await.get(&t2),
        Some(&vec![])
    );
    assert_eq!(get_string(&client, NAME).await, "versioned-value-1");
}

#[tokio::test]
async fn moving_a_label_without_remove_from_is_rejected() {
    let (_server, client) = setup(2).await;
    let (t1, t2) = (token(1), token(2));
    let message = format!(
        "The parameter RemoveFromVersionId can't be empty. Staging label AWSCURRENT is currently attached to version {t2}, so you must explicitly reference that version in RemoveFromVersionId."
    );
    assert_api_err(
        client
            .update_secret_version_stage()
            .secret_id(NAME)
            .version_stage("AWSCURRENT")
            .move_to_version_id(&t1)
            .send()
            .await,
        "InvalidParameterException",
        Some(&message),
    );
    assert_stages(&client, &[(&t1, &["AWSPREVIOUS"]), (&t2, &["AWSCURRENT"])]).await;
}

#[tokio::test]
async fn custom_label_add_move_and_remove() {
    let (_server, client) = setup(2).await;
    let (t1, t2) = (token(1), token(2));
    move_stage(&client, "blue", Some(&t1), None).await;
    assert_stages(
        &client,
        &[(&t1, &["AWSPREVIOUS", "blue"]), (&t2, &["AWSCURRENT"])],
    )
    .await;
    assert_eq!(
        get_stage(&client, NAME, "blue").await.1,
        "versioned-value-1"
    );

    move_stage(&client, "blue", Some(&t2), Some(&t1)).await;
    assert_stages(
        &client,
        &[(&t1, &["AWSPREVIOUS"]), (&t2, &["AWSCURRENT", "blue"])],
    )
    .await;

    move_stage(&client, "blue", None, Some(&t2)).await;
    assert_stages(&client, &[(&t1, &["AWSPREVIOUS"]), (&t2, &["AWSCURRENT"])]).await;
    assert_api_err(
        client
            .get_secret_value()
            .secret_id(NAME)
            .version_stage("blue")
            .send()
            .await,
        "ResourceNotFoundException",
        None,
    );
}

#[tokio::test]
async fn removing_previous_leaves_the_version_deprecated() {
    let (_server, client) = setup(2).await;
    let (t1, t2) = (token(1), token(2));
    move_stage(&client, "AWSPREVIOUS", None, Some(&t1)).await;
    assert_stages(&client, &[(&t2, &["AWSCURRENT"])]).await;
    assert_eq!(
        list_versions(&client, NAME, true).await,
        stages_of(&[(&t1, &[]), (&t2, &["AWSCURRENT"])])
    );
}

#[tokio::test]
async fn acs_aliases_read_the_aws_labels() {
    let (_server, client) = setup(2).await;
    let (t1, t2) = (token(1), token(2));
    let (id, value, labels) = get_stage(&client, NAME, "ACSCurrent").await;
    assert_eq!(
        (id, value, labels),
        (
            t2.clone(),
            "versioned-value-2".into(),
            vec!["AWSCURRENT".to_string()]
        )
    );
    let (id, value, labels) = get_stage(&client, NAME, "ACSPrevious").await;
    assert_eq!(
        (id, value, labels),
        (
            t1.clone(),
            "versioned-value-1".into(),
            vec!["AWSPREVIOUS".to_string()]
        )
    );
}

#[tokio::test]
async fn acs_alias_moves_aws_current() {
    let (_server, client) = setup(2).await;
    let (t1, t2) = (token(1), token(2));
    move_stage(&client, "ACSCurrent", Some(&t1), Some(&t2)).await;
    assert_stages(&client, &[(&t1, &["AWSCURRENT"]), (&t2, &["AWSPREVIOUS"])]).await;
    assert_eq!(get_string(&client, NAME).await, "versioned-value-1");
}

#[tokio::test]
async fn acs_pending_alias_is_stored_as_aws_pending() {
    let (_server, client) = setup(1).await;
    let (t1, t2) = (token(1), token(2));
    put_string_staged(&client, NAME, "pending", &t2, &["ACSPending"]).await;
    assert_stages(&client, &[(&t1, &["AWSCURRENT"]), (&t2, &["AWSPENDING"])]).await;
    let (id, value, labels) = get_stage(&client, NAME, "AWSPENDING").await;
    assert_eq!(
        (id, value, labels),
        (t2, "pending".into(), vec!["AWSPENDING".to_string()])
    );
}

#[tokio::test]
async fn list_secret_version_ids_reports_created_dates() {
    let (_server, client) = setup(2).await;
    let out = ok(client
        .list_secret_version_ids()
        .secret_id(NAME)
        .send()
        .await);
    assert_eq!(out.name(), Some(NAME));
    assert!(out.arn().is_some());
    assert_eq!(out.versions().len(), 2);
    for v in out.versions() {
        assert_near(v.created_date(), now_secs(), 600, "version CreatedDate");
    }
}

#[tokio::test]
async fn put_secret_value_answers_version_stages_in_the_order_given() {
    let server = Server::start().await;
    let client = server.client().await;
    create_plain(&client, "ordered", "versioned-value-1").await;
    let answer = server
        .raw(
            "PutSecretValue",
            &serde_json::json!({
                "SecretId": "ordered",
                "SecretString": "versioned-value-2",
                "ClientRequestToken": token(2),
                "VersionStages": ["zeta", "AWSCURRENT", "alpha"]
            })
            .to_string(),
            SignMode::Root,
        )
        .await
        .assert_ok();
    assert_eq!(
        answer["VersionStages"],
        serde_json::json!(["zeta", "AWSCURRENT", "alpha"]),
        "{answer}"
    );
    // A retry with the same token gets the same answer.
    let again = server
        .raw(
            "PutSecretValue",
            &serde_json::json!({
                "SecretId": "ordered",
                "SecretString": "versioned-value-2",
                "ClientRequestToken": token(2),
                "VersionStages": ["zeta", "AWSCURRENT", "alpha"]
            })
            .to_string(),
            SignMode::Root,
        )
        .await
        .assert_ok();
    assert_eq!(again["VersionStages"], answer["VersionStages"], "{again}");
}
