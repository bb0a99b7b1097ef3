//! ClientRequestToken idempotency and name clashes.

mod common;

use aws_sdk_secretsmanager::Client;
use common::*;

const NAME: &str = "idem";

fn token_in_use(token: &str, arn: &str) -> String {
    format!(
        "You can't use ClientRequestToken {token} because that value is already in use for a version of secret {arn}."
    )
}

async fn create(client: &Client, value: &str, token: &str) -> Result<(String, String), ApiError> {
    let request = client
        .create_secret()
        .name(NAME)
        .secret_string(value)
        .client_request_token(token);
    let out = res(request.send().await)?;
    Ok((
        out.arn().unwrap().to_string(),
        out.version_id().unwrap().to_string(),
    ))
}

async fn put(client: &Client, value: &str, token: &str) -> Result<String, ApiError> {
    let request = client
        .put_secret_value()
        .secret_id(NAME)
        .secret_string(value)
        .client_request_token(token);
    let out = res(request.send().await)?;
    Ok(out.version_id().unwrap().to_string())
}

fn assert_code(result: Result<impl std::fmt::Debug, ApiError>, code: &str, message: &str) {
    let err = result.expect_err("expected an error");
    assert_eq!((err.status, err.code.as_str()), (400, code), "{err:?}");
    assert_eq!(err.message, message);
}

#[tokio::test]
async fn create_retry_with_same_token_and_value_is_idempotent() {
    let server = Server::start().await;
    let client = server.client().await;
    let first = create(&client, "versioned-value-1", &token(1))
        .await
        .expect("first CreateSecret");
    let again = create(&client, "versioned-value-1", &token(1))
        .await
        .expect("retried CreateSecret must succeed");
    assert_eq!(
        first, again,
        "a retry must answer the same ARN and VersionId"
    );
    assert_eq!(
        list_versions(&client, NAME, true).await,
        stages_of(&[(&token(1), &["AWSCURRENT"])])
    );
}

#[tokio::test]
async fn create_retry_with_same_token_and_other_value_is_rejected() {
    let server = Server::start().await;
    let client = server.client().await;
    let (arn, _) = create(&client, "versioned-value-1", &token(1))
        .await
        .expect("first CreateSecret");
    assert_code(
        create(&client, "other-value", &token(1)).await,
        "ResourceExistsException",
        &token_in_use(&token(1), &arn),
    );
    assert_eq!(get_string(&client, NAME).await, "versioned-value-1");
}

#[tokio::test]
async fn create_with_existing_name_is_rejected() {
    let server = Server::start().await;
    let client = server.client().await;
    create(&client, "versioned-value-1", &token(1))
        .await
        .expect("first CreateSecret");
    assert_code(
        create(&client, "versioned-value-1", &token(2)).await,
        "ResourceExistsException",
        &format!("The operation failed because the secret {NAME} already exists."),
    );
    assert_eq!(list_versions(&client, NAME, true).await.len(), 1);
}

#[tokio::test]
async fn put_retry_with_same_token_and_value_is_idempotent() {
    let server = Server::start().await;
    let client = server.client().await;
    create(&client, "versioned-value-1", &token(1))
        .await
        .expect("CreateSecret");
    assert_eq!(
        put(&client, "versioned-value-2", &token(2))
            .await
            .expect("first put"),
        token(2)
    );
    assert_eq!(
        put(&client, "versioned-value-2", &token(2))
            .await
            .expect("retried put must succeed"),
        token(2)
    );
    let expected = stages_of(&[(&token(1), &["AWSPREVIOUS"]), (&token(2), &["AWSCURRENT"])]);
    assert_eq!(
        list_versions(&client, NAME, true).await,
        expected,
        "the retry must not add or relabel"
    );
}

#[tokio::test]
async fn put_retry_of_the_create_token_is_idempotent() {
    let server = Server::start().await;
    let client = server.client().await;
    create(&client, "versioned-value-1", &token(1))
        .await
        .expect("CreateSecret");
    assert_eq!(
        put(&client, "versioned-value-1", &token(1))
            .await
            .expect("put with the create token"),
        token(1)
    );
    assert_eq!(
        list_versions(&client, NAME, true).await,
        stages_of(&[(&token(1), &["AWSCURRENT"])])
    );
}

#[tokio::test]
async fn put_retry_with_same_token_and_other_value_is_rejected() {
    let server = Server::start().await;
    let client = server.client().await;
    let (arn, _) = create(&client, "versioned-value-1", &token(1))
        .await
        .expect("CreateSecret");
    put(&client, "versioned-value-2", &token(2))
        .await
        .expect("first put");
    assert_code(
        put(&client, "changed-value", &token(2)).await,
        "ResourceExistsException",
        &token_in_use(&token(2), &arn),
    );
    assert_eq!(get_string(&client, NAME).await, "versioned-value-2");
    assert_eq!(list_versions(&client, NAME, true).await.len(), 2);
}
