//! TagResource / UntagResource.

mod common;

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::Client;
use common::*;

const NAME: &str = "tagged";

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A server, a root client and `NAME` created with tags a=1, b=2.
async fn setup() -> (Server, Client) {
    let server = Server::start().await;
    let client = server.client().await;
    let create = client
        .create_secret()
        .name(NAME)
        .secret_string("tagged-secret-value")
        .tags(tag("a", "1"))
        .tags(tag("b", "2"));
    ok(create.send().await);
    (server, client)
}

async fn tag_resource(client: &Client, id: &str, tags: &[(&str, &str)]) {
    let mut request = client.tag_resource().secret_id(id);
    for (k, v) in tags {
        request = request.tags(tag(k, v));
    }
    ok(request.send().await);
}

async fn untag_resource(client: &Client, id: &str, keys: &[&str]) {
    let mut request = client.untag_resource().secret_id(id);
    for k in keys {
        request = request.tag_keys(*k);
    }
    ok(request.send().await);
}

#[tokio::test]
async fn create_with_tags() {
    let (_server, client) = setup().await;
    assert_eq!(
        describe_tags(&client, NAME).await,
        map(&[("a", "1"), ("b", "2")])
    );
}

#[tokio::test]
async fn tag_resource_adds_and_overwrites() {
    let (_server, client) = setup().await;
    tag_resource(&client, NAME, &[("c", "3"), ("a", "10")]).await;
    assert_eq!(
        describe_tags(&client, NAME).await,
        map(&[("a", "10"), ("b", "2"), ("c", "3")])
    );
}

#[tokio::test]
async fn untag_resource_removes_only_named_keys() {
    let (_server, client) = setup().await;
    tag_resource(&client, NAME, &[("c", "3")]).await;
    untag_resource(&client, NAME, &["b", "not-there"]).await;
    assert_eq!(
        describe_tags(&client, NAME).await,
        map(&[("a", "1"), ("c", "3")])
    );
    untag_resource(&client, NAME, &["a", "c"]).await;
    assert_eq!(describe_tags(&client, NAME).await, map(&[]));
}

#[tokio::test]
async fn empty_tag_value_is_kept() {
    let (_server, client) = setup().await;
    tag_resource(&client, NAME, &[("empty", "")]).await;
    assert_eq!(
        describe_tags(&client, NAME).await,
        map(&[("a", "1"), ("b", "2"), ("empty", "")])
    );
}

#[tokio::test]
async fn tagging_by_arn_works() {
    let (_server, client) = setup().await;
    let arn = ok(client.describe_secret().secret_id(NAME).send().await)
        .arn()
        .unwrap()
        .to_string();
    tag_resource(&client, &arn, &[("via", "arn")]).await;
    untag_resource(&client, &arn, &["a"]).await;
    assert_eq!(
        describe_tags(&client, NAME).await,
        map(&[("b", "2"), ("via", "arn")])
    );
}

#[tokio::test]
async fn tag_key_over_128_chars_is_refused() {
    let (_server, client) = setup().await;
    let long = "k".repeat(129);
    assert_api_err(
        client
            .tag_resource()
            .secret_id(NAME)
            .tags(tag(&long, "v"))
            .send()
            .await,
        "ValidationException",
        None,
    );
    assert_eq!(
        describe_tags(&client, NAME).await,
        map(&[("a", "1"), ("b", "2")])
    );
}

#[tokio::test]
async fn tagging_a_missing_secret_is_not_found() {
    let (_server, client) = setup().await;
    assert_api_err(
        client
            .tag_resource()
            .secret_id("missing")
            .tags(tag("k", "v"))
            .send()
            .await,
        "ResourceNotFoundException",
        Some(NOT_FOUND_MSG),
    );
    assert_api_err(
        client
            .untag_resource()
            .secret_id("missing")
            .tag_keys("k")
            .send()
            .await,
        "ResourceNotFoundException",
        Some(NOT_FOUND_MSG),
    );
}

/// `Tags` in the raw DescribeSecret answer and in the secret's ListSecrets entry.
async fn wire_tags(
    server: &Server,
    id: &str,
) -> (Option<serde_json::Value>, Option<serde_json::Value>) {
    let d = server
        .raw(
            "DescribeSecret",
            &serde_json::json!({ "SecretId": id }).to_string(),
            SignMode::Root,
        )
        .await
        .assert_ok();
    let list = server
        .raw(
            "ListSecrets",
            &serde_json::json!({"Filters": [{"Key": "name", "Values": [id]}]}).to_string(),
            SignMode::Root,
        )
        .await
        .assert_ok();
    let entry = list["SecretList"]
        .as_array()
        .and_then(|l| l.iter().find(|s| s["Name"] == id))
        .unwrap_or_else(|| panic!("{id} not listed: {list}"))
        .clone();
    (d.get("Tags").cloned(), entry.get("Tags").cloned())
}

#[tokio::test]
async fn tags_are_an_empty_list_once_all_were_removed_and_absent_if_never_set() {
    let (server, client) = setup().await;
    create_plain(&client, "never", "tagged-secret-value").await;
    create_plain(&client, "later", "tagged-secret-value").await;
    assert_eq!(wire_tags(&server, "never").await, (None, None));
    untag_resource(&client, NAME, &["a", "b"]).await;
    let empty = Some(serde_json::json!([]));
    assert_eq!(
        wire_tags(&server, NAME).await,
        (empty.clone(), empty.clone())
    );
    tag_resource(&client, "later", &[("k", "v")]).await;
    untag_resource(&client, "later", &["k"]).await;
    assert_eq!(wire_tags(&server, "later").await, (empty.clone(), empty));
    // Removing a tag a never-tagged secret does not have leaves it never-tagged.
    untag_resource(&client, "never", &["nothing"]).await;
    assert_eq!(wire_tags(&server, "never").await, (None, None));
}
