//! ListSecrets in full: filters (prefix vs substring, case, negation, AND/OR), sorting, planned
//! deletions, and opaque NextTokens that survive concurrent creation and refuse forgery.

mod common;

use std::collections::BTreeSet;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType as Key, SortOrderType};
use common::*;

async fn make(client: &Client, name: &str, description: Option<&str>, tags: &[(&str, &str)]) {
    let mut req = client
        .create_secret()
        .name(name)
        .secret_string("listed-secret-value");
    if let Some(d) = description {
        req = req.description(d);
    }
    for (k, v) in tags {
        req = req.tags(tag(k, v));
    }
    ok(req.send().await);
}

/// The names a filtered listing returns, collected over every page.
async fn names(client: &Client, filters: &[(Key, &[&str])]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = client.list_secrets().max_results(2).set_next_token(token);
        for (key, values) in filters {
            let mut f = Filter::builder().key(key.clone());
            for v in *values {
                f = f.values(*v);
            }
            req = req.filters(f.build());
        }
        let page = ok(req.send().await);
        for s in page.secret_list() {
            assert!(out.insert(s.name().unwrap().to_string()), "listed twice");
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            return out;
        }
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

async fn fixture() -> (Server, Client) {
    let server = Server::start().await;
    let client = server.client().await;
    make(
        &client,
        "app/alpha",
        Some("Primary database"),
        &[("env", "prod"), ("team", "a")],
    )
    .await;
    make(
        &client,
        "app/beta",
        Some("secondary cache"),
        &[("env", "dev")],
    )
    .await;
    make(&client, "App/gamma", None, &[]).await;
    make(
        &client,
        "other/delta",
        Some("primary backup"),
        &[("Env", "production")],
    )
    .await;
    (server, client)
}

#[tokio::test]
async fn name_filter_is_a_case_sensitive_prefix() {
    let (_s, c) = fixture().await;
    assert_eq!(
        names(&c, &[(Key::Name, &["app/"])]).await,
        set(&["app/alpha", "app/beta"])
    );
    assert_eq!(
        names(&c, &[(Key::Name, &["App/"])]).await,
        set(&["App/gamma"])
    );
    // A prefix, not a substring.
    assert!(names(&c, &[(Key::Name, &["pha"])]).await.is_empty());
    // Values of one filter are alternatives.
    assert_eq!(
        names(&c, &[(Key::Name, &["app/a", "other/"])]).await,
        set(&["app/alpha", "other/delta"])
    );
}

#[tokio::test]
async fn negation_excludes() {
    let (_s, c) = fixture().await;
    assert_eq!(
        names(&c, &[(Key::Name, &["!app/"])]).await,
        set(&["App/gamma", "other/delta"])
    );
    assert_eq!(
        names(&c, &[(Key::TagKey, &["!env"])]).await,
        set(&["App/gamma", "other/delta"])
    );
}

#[tokio::test]
async fn description_filter_matches_the_beginnings_of_words_in_any_case() {
    let (_s, c) = fixture().await;
    assert_eq!(
        names(&c, &[(Key::Description, &["PRIMARY"])]).await,
        set(&["app/alpha", "other/delta"])
    );
    assert_eq!(
        names(&c, &[(Key::Description, &["datab"])]).await,
        set(&["app/alpha"])
    );
    // Words match from their beginning, not anywhere.
    assert!(names(&c, &[(Key::Description, &["mary"])]).await.is_empty());
}

/// The examples of AWS's user guide, "Find secrets in AWS Secrets Manager".
#[tokio::test]
async fn filters_match_as_the_aws_user_guide_shows() {
    let server = Server::start().await;
    let c = server.client().await;
    for name in ["DatabaseSecret", "databaseSecret", "MyData"] {
        make(&c, name, None, &[]).await;
    }
    assert_eq!(
        names(&c, &[(Key::Name, &["Data"])]).await,
        set(&["DatabaseSecret"])
    );
    for (name, description) in [
        ("d1", "My Description"),
        ("d2", "my description"),
        ("d3", "My basic description"),
        ("d4", "Description of my secret"),
        ("d5", "my secret"),
    ] {
        make(&c, name, Some(description), &[]).await;
    }
    assert_eq!(
        names(&c, &[(Key::Description, &["My Description"])]).await,
        set(&["d1", "d2", "d3", "d4"])
    );
    // `all` breaks `credsDatabase 892` into creds, Database and 892, found in any field.
    make(
        &c,
        "job/creds",
        Some("Database of the nightly job"),
        &[("run", "892")],
    )
    .await;
    assert_eq!(
        names(&c, &[(Key::All, &["credsDatabase_892"])]).await,
        set(&["job/creds"])
    );
    assert_eq!(
        names(&c, &[(Key::All, &["MY_SECRET"])]).await,
        set(&["d4", "d5"])
    );
    // Special characters alone match nothing.
    assert!(names(&c, &[(Key::All, &["_/"])]).await.is_empty());
    assert!(names(&c, &[(Key::Description, &["-"])]).await.is_empty());
}

#[tokio::test]
async fn values_of_one_filter_are_alternatives_each_negated_on_its_own() {
    let server = Server::start().await;
    let c = server.client().await;
    for name in ["one/a", "two/b", "three/c"] {
        make(&c, name, None, &[]).await;
    }
    assert_eq!(
        names(&c, &[(Key::Name, &["one", "!two"])]).await,
        set(&["one/a", "three/c"])
    );
    assert_eq!(
        names(&c, &[(Key::Name, &["!one", "two"])]).await,
        set(&["two/b", "three/c"])
    );
    assert_eq!(
        names(&c, &[(Key::Name, &["!one"]), (Key::Name, &["!two"])]).await,
        set(&["three/c"])
    );
}

#[tokio::test]
async fn tag_filters_are_case_sensitive_prefixes_and_filters_combine_with_and() {
    let (_s, c) = fixture().await;
    assert_eq!(
        names(&c, &[(Key::TagKey, &["env"])]).await,
        set(&["app/alpha", "app/beta"])
    );
    assert_eq!(
        names(&c, &[(Key::TagKey, &["Env"])]).await,
        set(&["other/delta"])
    );
    assert_eq!(
        names(&c, &[(Key::TagValue, &["prod"])]).await,
        set(&["app/alpha", "other/delta"])
    );
    assert_eq!(
        names(&c, &[(Key::Name, &["app/"]), (Key::TagValue, &["prod"])]).await,
        set(&["app/alpha"])
    );
}

#[tokio::test]
async fn all_filter_matches_words_anywhere_in_any_case() {
    let (_s, c) = fixture().await;
    assert_eq!(
        names(&c, &[(Key::All, &["PRIMARY"])]).await,
        set(&["app/alpha", "other/delta"])
    );
    assert_eq!(
        names(&c, &[(Key::All, &["primary backup"])]).await,
        set(&["other/delta"])
    );
    assert_eq!(
        names(&c, &[(Key::All, &["gamma"])]).await,
        set(&["App/gamma"])
    );
}

#[tokio::test]
async fn bad_filters_are_refused() {
    let (s, _c) = fixture().await;
    let r = s
        .raw(
            "ListSecrets",
            r#"{"Filters":[{"Key":"colour","Values":["x"]}]}"#,
            SignMode::Root,
        )
        .await;
    let msg = r.assert_error("ValidationException");
    assert!(msg.contains("colour"), "{msg}");
    let r = s
        .raw(
            "ListSecrets",
            r#"{"Filters":[{"Key":"name","Values":["a%b"]}]}"#,
            SignMode::Root,
        )
        .await;
    r.assert_error("ValidationException");
}

#[tokio::test]
async fn sorting_by_name_and_date() {
    let (_s, c) = fixture().await;
    let list = |order: SortOrderType, by: &'static str| {
        let c = c.clone();
        async move {
            let page = ok(c
                .list_secrets()
                .sort_by(by.into())
                .sort_order(order)
                .send()
                .await);
            page.secret_list()
                .iter()
                .map(|s| s.name().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(SortOrderType::Asc, "name").await,
        ["App/gamma", "app/alpha", "app/beta", "other/delta"]
    );
    assert_eq!(
        list(SortOrderType::Desc, "name").await,
        ["other/delta", "app/beta", "app/alpha", "App/gamma"]
    );
    assert_eq!(
        list(SortOrderType::Asc, "created-date").await,
        ["app/alpha", "app/beta", "App/gamma", "other/delta"]
    );
    assert_eq!(
        list(SortOrderType::Desc, "created-date").await,
        ["other/delta", "App/gamma", "app/beta", "app/alpha"]
    );
}

#[tokio::test]
async fn planned_deletions_are_listed_only_on_request() {
    let (_s, c) = fixture().await;
    ok(c.delete_secret().secret_id("app/beta").send().await);
    let listed = |include: bool| {
        let c = c.clone();
        async move {
            ok(c.list_secrets()
                .include_planned_deletion(include)
                .send()
                .await)
            .secret_list()
            .iter()
            .map(|s| (s.name().unwrap().to_string(), s.deleted_date().is_some()))
            .collect::<Vec<_>>()
        }
    };
    assert!(!listed(false).await.iter().any(|(n, _)| n == "app/beta"));
    assert!(listed(true).await.contains(&("app/beta".to_string(), true)));
}

#[tokio::test]
async fn pagination_lists_every_secret_once_while_others_are_created() {
    let server = Server::start().await;
    let c = server.client().await;
    let mut originals = BTreeSet::new();
    for i in 0..23 {
        let name = format!("page/{i:02}");
        make(&c, &name, None, &[]).await;
        originals.insert(name);
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut created = 0;
    loop {
        let page = ok(c
            .list_secrets()
            .max_results(5)
            .set_next_token(token)
            .send()
            .await);
        assert!(page.secret_list().len() <= 5);
        seen.extend(
            page.secret_list()
                .iter()
                .map(|s| s.name().unwrap().to_string()),
        );
        // Creations between pages must not make the listing skip or repeat anything.
        for _ in 0..2 {
            make(&c, &format!("late/{created:02}"), None, &[]).await;
            created += 1;
        }
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "a secret was listed twice: {seen:?}"
    );
    assert!(
        originals.is_subset(&unique),
        "missing: {:?}",
        originals.difference(&unique)
    );
}

#[tokio::test]
async fn forged_or_foreign_next_tokens_are_refused() {
    let (s, c) = fixture().await;
    let page = ok(c.list_secrets().max_results(1).send().await);
    let token = page.next_token().expect("more than one page").to_string();
    // The token works for the query that issued it.
    ok(c.list_secrets()
        .max_results(1)
        .next_token(&token)
        .send()
        .await);
    // Altered by one character.
    let mut forged = token.clone().into_bytes();
    forged[2] = if forged[2] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert_api_err(
        c.list_secrets().next_token(forged).send().await,
        "InvalidNextTokenException",
        None,
    );
    assert_api_err(
        c.list_secrets().next_token("not-a-token").send().await,
        "InvalidNextTokenException",
        None,
    );
    // Used with another query (different sort).
    assert_api_err(
        c.list_secrets()
            .sort_by("name".into())
            .next_token(&token)
            .send()
            .await,
        "InvalidNextTokenException",
        None,
    );
    // Not accepted by another operation either.
    let body = format!(r#"{{"SecretId":"app/alpha","NextToken":"{token}"}}"#);
    s.raw("ListSecretVersionIds", &body, SignMode::Root)
        .await
        .assert_error("InvalidNextTokenException");
}

/// `RotationEnabled` as the raw DescribeSecret answer and the ListSecrets entry show it.
async fn wire_rotation_enabled(
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
        .raw("ListSecrets", "{}", SignMode::Root)
        .await
        .assert_ok();
    let entry = list["SecretList"]
        .as_array()
        .and_then(|l| l.iter().find(|s| s["Name"] == id))
        .unwrap_or_else(|| panic!("{id} not listed: {list}"))
        .clone();
    (
        d.get("RotationEnabled").cloned(),
        entry.get("RotationEnabled").cloned(),
    )
}

#[tokio::test]
async fn rotation_enabled_is_absent_until_rotation_was_configured() {
    let server = Server::start().await;
    let c = server.client().await;
    let arn = create_plain(&c, "rot/flag", "rotation-flag-value").await;
    assert_eq!(
        wire_rotation_enabled(&server, "rot/flag").await,
        (None, None)
    );
    server
        .raw(
            "RotateSecret",
            &serde_json::json!({
                "SecretId": "rot/flag",
                "RotationLambdaARN": lambda_arn(&arn, "kura-password"),
                "RotationRules": {"ScheduleExpression": "rate(10 days)"},
                "RotateImmediately": false
            })
            .to_string(),
            SignMode::Root,
        )
        .await
        .assert_ok();
    let on = Some(serde_json::json!(true));
    assert_eq!(
        wire_rotation_enabled(&server, "rot/flag").await,
        (on.clone(), on)
    );
    server
        .raw(
            "CancelRotateSecret",
            r#"{"SecretId":"rot/flag"}"#,
            SignMode::Root,
        )
        .await
        .assert_ok();
    let off = Some(serde_json::json!(false));
    assert_eq!(
        wire_rotation_enabled(&server, "rot/flag").await,
        (off.clone(), off)
    );
}
