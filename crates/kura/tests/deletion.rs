//! DeleteSecret, the recovery window, RestoreSecret and forced deletion.

mod common;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::delete_secret::DeleteSecretOutput;
use common::*;

const NAME: &str = "doomed";
/// Tolerance for dates computed by the server from its own clock.
const SLACK: i64 = 600;

/// A server, a root client, and `NAME` = "versioned-value-1" (token 1); returns its ARN too.
async fn setup() -> (Server, Client, String) {
    let server = Server::start().await;
    let client = server.client().await;
    let (arn, _) = create_string(&client, NAME, "versioned-value-1", &token(1)).await;
    (server, client, arn)
}

async fn delete(client: &Client, window: Option<i64>, force: Option<bool>) -> DeleteSecretOutput {
    ok(client
        .delete_secret()
        .secret_id(NAME)
        .set_recovery_window_in_days(window)
        .set_force_delete_without_recovery(force)
        .send()
        .await)
}

async fn listed_names(client: &Client, include_planned_deletion: bool) -> Vec<String> {
    let out = ok(client
        .list_secrets()
        .include_planned_deletion(include_planned_deletion)
        .send()
        .await);
    out.secret_list()
        .iter()
        .map(|e| e.name().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn default_recovery_window_is_30_days() {
    let (_server, client, arn) = setup().await;
    let out = delete(&client, None, None).await;
    assert_eq!(out.arn(), Some(arn.as_str()));
    assert_eq!(out.name(), Some(NAME));
    assert_near(
        out.deletion_date(),
        now_secs() + 30 * DAY,
        SLACK,
        "DeletionDate",
    );
}

#[tokio::test]
async fn recovery_window_of_7_days() {
    let (_server, client, _arn) = setup().await;
    let out = delete(&client, Some(7), None).await;
    assert_near(
        out.deletion_date(),
        now_secs() + 7 * DAY,
        SLACK,
        "DeletionDate",
    );
}

#[tokio::test]
async fn recovery_window_out_of_range_is_rejected() {
    let (_server, client, _arn) = setup().await;
    for days in [6, 31] {
        assert_api_err(
            client
                .delete_secret()
                .secret_id(NAME)
                .recovery_window_in_days(days)
                .send()
                .await,
            "InvalidParameterException",
            None,
        );
    }
    assert_eq!(
        get_string(&client, NAME).await,
        "versioned-value-1",
        "a refused delete must leave the secret alone"
    );
}

#[tokio::test]
async fn recovery_window_with_force_is_rejected() {
    let (_server, client, _arn) = setup().await;
    assert_api_err(
        client
            .delete_secret()
            .secret_id(NAME)
            .recovery_window_in_days(7)
            .force_delete_without_recovery(true)
            .send()
            .await,
        "InvalidParameterException",
        None,
    );
    assert_eq!(get_string(&client, NAME).await, "versioned-value-1");
}

fn assert_marked_for_deletion<T: std::fmt::Debug>(result: Result<T, ApiError>, op: &str) {
    let err = result.expect_err(op);
    assert_eq!(
        (err.status, err.code.as_str()),
        (400, "InvalidRequestException"),
        "{op}: {err:?}"
    );
    assert_eq!(err.message, MARKED_FOR_DELETION_MSG, "{op}");
}

#[tokio::test]
async fn operations_on_a_secret_pending_deletion_are_refused() {
    let (_server, client, _arn) = setup().await;
    delete(&client, Some(7), None).await;
    let c = &client;
    assert_marked_for_deletion(
        res(c.get_secret_value().secret_id(NAME).send().await),
        "GetSecretValue",
    );
    let put = c
        .put_secret_value()
        .secret_id(NAME)
        .secret_string("versioned-value-2")
        .send()
        .await;
    assert_marked_for_deletion(res(put), "PutSecretValue");
    let update = c
        .update_secret()
        .secret_id(NAME)
        .description("d")
        .send()
        .await;
    assert_marked_for_deletion(res(update), "UpdateSecret");
    let tag_res = c
        .tag_resource()
        .secret_id(NAME)
        .tags(tag("k", "v"))
        .send()
        .await;
    assert_marked_for_deletion(res(tag_res), "TagResource");
    let untag = c
        .untag_resource()
        .secret_id(NAME)
        .tag_keys("k")
        .send()
        .await;
    assert_marked_for_deletion(res(untag), "UntagResource");
    let stage = c
        .update_secret_version_stage()
        .secret_id(NAME)
        .version_stage("x")
        .move_to_version_id(token(1))
        .send()
        .await;
    assert_marked_for_deletion(res(stage), "UpdateSecretVersionStage");
    let again = c.delete_secret().secret_id(NAME).send().await;
    assert_marked_for_deletion(res(again), "DeleteSecret (not forced)");
}

#[tokio::test]
async fn pending_secret_is_described_but_not_listed() {
    let (_server, client, _arn) = setup().await;
    delete(&client, Some(7), None).await;
    let described = ok(client.describe_secret().secret_id(NAME).send().await);
    assert_near(described.deleted_date(), now_secs(), SLACK, "DeletedDate");
    assert_eq!(listed_names(&client, false).await, Vec::<String>::new());
    assert_eq!(listed_names(&client, true).await, vec![NAME.to_string()]);
    let listed = ok(client
        .list_secrets()
        .include_planned_deletion(true)
        .send()
        .await);
    assert!(
        listed.secret_list()[0].deleted_date().is_some(),
        "listed entry without DeletedDate"
    );
    // Still allowed while pending.
    assert_eq!(list_versions(&client, NAME, false).await.len(), 1);
}

#[tokio::test]
async fn create_with_name_pending_deletion_is_refused() {
    let (_server, client, _arn) = setup().await;
    delete(&client, None, None).await;
    assert_api_err(
        client
            .create_secret()
            .name(NAME)
            .secret_string("again")
            .send()
            .await,
        "InvalidRequestException",
        Some(SCHEDULED_FOR_DELETION_MSG),
    );
}

#[tokio::test]
async fn restore_secret_makes_it_usable_again() {
    let (_server, client, arn) = setup().await;
    delete(&client, None, None).await;
    let restored = ok(client.restore_secret().secret_id(NAME).send().await);
    assert_eq!(restored.arn(), Some(arn.as_str()));
    assert_eq!(restored.name(), Some(NAME));
    let described = ok(client.describe_secret().secret_id(NAME).send().await);
    assert!(
        described.deleted_date().is_none(),
        "DeletedDate after RestoreSecret"
    );
    assert_eq!(get_string(&client, NAME).await, "versioned-value-1");
    assert_eq!(listed_names(&client, false).await, vec![NAME.to_string()]);
    put_string(&client, NAME, "versioned-value-2", &token(2)).await;
    assert_eq!(get_string(&client, NAME).await, "versioned-value-2");
}

#[tokio::test]
async fn force_delete_removes_at_once_and_frees_the_name() {
    let (_server, client, arn) = setup().await;
    let out = delete(&client, None, Some(true)).await;
    assert_eq!(out.arn(), Some(arn.as_str()));
    assert_near(
        out.deletion_date(),
        now_secs(),
        SLACK,
        "DeletionDate of a forced delete",
    );
    assert_api_err(
        client.get_secret_value().secret_id(NAME).send().await,
        "ResourceNotFoundException",
        Some(NOT_FOUND_MSG),
    );
    assert_no_secret(&client, NAME).await;
    assert_eq!(listed_names(&client, true).await, Vec::<String>::new());

    let (new_arn, _) = create_string(&client, NAME, "reborn", &token(2)).await;
    assert_ne!(
        arn_suffix(&new_arn, NAME),
        arn_suffix(&arn, NAME),
        "a recreated secret needs a new suffix"
    );
    assert_eq!(get_string(&client, NAME).await, "reborn");
    assert_api_err(
        client.get_secret_value().secret_id(&arn).send().await,
        "ResourceNotFoundException",
        Some(NOT_FOUND_MSG),
    );
}

#[tokio::test]
async fn force_delete_of_a_pending_secret_works() {
    let (_server, client, _arn) = setup().await;
    delete(&client, Some(7), None).await;
    delete(&client, None, Some(true)).await;
    assert_no_secret(&client, NAME).await;
}

#[tokio::test]
async fn force_delete_of_a_missing_secret_is_not_an_error() {
    let server = Server::start().await;
    let client = server.client().await;
    let delete = client
        .delete_secret()
        .secret_id("never-existed")
        .force_delete_without_recovery(true);
    ok(delete.send().await);
    assert_no_secret(&client, "never-existed").await;
}

#[tokio::test]
async fn delete_of_a_missing_secret_without_force_is_not_found() {
    let server = Server::start().await;
    let client = server.client().await;
    assert_api_err(
        client
            .delete_secret()
            .secret_id("never-existed")
            .send()
            .await,
        "ResourceNotFoundException",
        Some(NOT_FOUND_MSG),
    );
}
