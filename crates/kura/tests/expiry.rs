//! Expiry (issue 15, points 5 and 6), end to end under the test clock: Kura.SetSecretExpiration
//! on any secret (shown by DescribeSecret and ListSecrets, filtered on by
//! `kura:expires-before`, refused on bad input, authorized and audited); `SecretExpiring` on
//! the days each notification target asked for and `SecretExpired`, each delivered once, across
//! restarts; a certificate secret without RotationRules renewed 31 days before it expires (a
//! short-lived one two thirds into its life), a failed renewal retried daily, and its state
//! shown; and a user's access key swept a week after it expired, audited.

mod common;

use std::time::Duration;

use common::cli::Cli;
use common::receiver::Receiver;
use common::*;
use serde_json::{Value, json};

const DAY: i64 = 86_400;
/// 2030-01-01T00:00:00Z.
const T2030: i64 = 1_893_456_000;

async fn ok_kura(server: &Server, op: &str, body: Value) -> Value {
    server.kura(op, &body.to_string()).await.assert_ok()
}

async fn kura_err(server: &Server, op: &str, body: Value, code: &str) -> String {
    server.kura(op, &body.to_string()).await.assert_error(code)
}

async fn set_clock(server: &Server, t: i64) {
    ok_kura(server, "SetClock", json!({ "Time": t })).await;
}

async fn test_clock_server() -> Server {
    let server = Server::start_with(&["--test-clock"]).await;
    set_clock(&server, T2030).await;
    server
}

/// Names ListSecrets answers for `filters`, and its raw answer.
async fn listed(server: &Server, filters: Value) -> (Vec<String>, Value) {
    let page = server
        .raw(
            "ListSecrets",
            &json!({ "Filters": filters, "SortBy": "name" }).to_string(),
            SignMode::Root,
        )
        .await
        .assert_ok();
    let names = page["SecretList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Name"].as_str().unwrap().to_string())
        .collect();
    (names, page)
}

fn date(v: &Value) -> Option<i64> {
    v.as_f64().map(|t| t as i64)
}

#[tokio::test]
async fn an_expiration_is_set_shown_filtered_audited_and_cleared() {
    let server = test_clock_server().await;
    let c = server.client().await;
    let arn = create_plain(&c, "api/partner-key", "k-123").await;
    create_plain(&c, "api/other", "k-456").await;
    let expires = T2030 + 40 * DAY; // 2030-02-10T00:00:00Z

    let set = ok_kura(
        &server,
        "SetSecretExpiration",
        json!({"SecretId": "api/partner-key", "ExpirationDate": expires}),
    )
    .await;
    assert_eq!(set["ARN"], arn.as_str());
    let d = describe_json(&server, "api/partner-key").await;
    assert_eq!(date(&d["KuraExpirationDate"]), Some(expires), "{d:#}");
    assert_eq!(d["KuraState"], "Active");
    let other = describe_json(&server, "api/other").await;
    assert!(
        other.get("KuraExpirationDate").is_none() && other.get("KuraState").is_none(),
        "{other:#}"
    );

    // The filter: epoch seconds or RFC 3339; strictly before; `!` for the rest.
    for (value, want) in [
        ((expires + 1).to_string(), vec!["api/partner-key"]),
        (expires.to_string(), vec![]),
        ("2030-02-10T00:00:01Z".to_string(), vec!["api/partner-key"]),
        ("2030-02-10T01:00:00+01:00".to_string(), vec![]),
        (format!("!{}", expires + 1), vec!["api/other"]),
    ] {
        let (names, _) = listed(
            &server,
            json!([{"Key": "kura:expires-before", "Values": [value]}]),
        )
        .await;
        assert_eq!(names, want, "kura:expires-before {value}");
    }
    let (_, page) = listed(&server, json!([{"Key": "name", "Values": ["api/partner"]}])).await;
    assert_eq!(
        date(&page["SecretList"][0]["KuraExpirationDate"]),
        Some(expires),
        "ListSecrets entries show it: {page:#}"
    );

    // Bad input names what to fix.
    let msg = server
        .raw(
            "ListSecrets",
            &json!({"Filters": [{"Key": "kura:expires-before", "Values": ["tomorrow"]}]})
                .to_string(),
            SignMode::Root,
        )
        .await
        .assert_error("InvalidParameterException");
    assert!(
        msg.contains("kura:expires-before") && msg.contains("tomorrow"),
        "{msg}"
    );
    for (date, what) in [
        (json!(-1), "epoch seconds"),
        (json!(T2030 - DAY), "not in the future"),
        (json!(1e12), "epoch seconds"),
    ] {
        let msg = kura_err(
            &server,
            "SetSecretExpiration",
            json!({"SecretId": "api/partner-key", "ExpirationDate": date}),
            "InvalidParameterException",
        )
        .await;
        assert!(msg.contains(what), "{date}: {msg}");
    }
    kura_err(
        &server,
        "SetSecretExpiration",
        json!({"SecretId": "api/partner-key", "ExpirationDate": "soon"}),
        "SerializationException",
    )
    .await;
    kura_err(
        &server,
        "SetSecretExpiration",
        json!({"SecretId": "api/nope", "ExpirationDate": expires}),
        "ResourceNotFoundException",
    )
    .await;
    assert_eq!(
        date(&describe_json(&server, "api/partner-key").await["KuraExpirationDate"]),
        Some(expires),
        "a refused change changes nothing"
    );

    // Authorized as kura:SetSecretExpiration on the secret, like other writes.
    ok_kura(&server, "CreateUser", json!({"UserName": "ops"})).await;
    let (akid, secret) = server.new_access_key("ops").await;
    let body = json!({"SecretId": "api/partner-key", "ExpirationDate": expires + DAY}).to_string();
    server
        .raw_as(&akid, &secret, "Kura.SetSecretExpiration", &body)
        .await
        .assert_error("AccessDeniedException");
    ok_kura(
        &server,
        "PutUserPolicy",
        json!({"UserName": "ops", "PolicyName": "expiry", "PolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "kura:SetSecretExpiration", "Resource": arn}]
        }}),
    )
    .await;
    server
        .raw_as(&akid, &secret, "Kura.SetSecretExpiration", &body)
        .await
        .assert_ok();
    let audit = ok_kura(
        &server,
        "LookupAuditEvents",
        json!({"Action": "kura:SetSecretExpiration"}),
    )
    .await;
    let by_ops: Vec<(&str, &str, &str)> = audit["Events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["Principal"].as_str().unwrap().ends_with(":user/ops"))
        .map(|e| {
            (
                e["Decision"].as_str().unwrap(),
                e["Outcome"].as_str().unwrap(),
                e["Resource"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(by_ops.len(), 2, "{audit:#}");
    assert_eq!((by_ops[0].0, by_ops[0].1), ("Deny", "Error"), "{audit:#}");
    assert_eq!(by_ops[1], ("Allow", "Success", arn.as_str()), "{audit:#}");

    // null clears it.
    ok_kura(
        &server,
        "SetSecretExpiration",
        json!({"SecretId": "api/partner-key", "ExpirationDate": null}),
    )
    .await;
    let d = describe_json(&server, "api/partner-key").await;
    assert!(d.get("KuraExpirationDate").is_none(), "{d:#}");
    let (names, _) = listed(
        &server,
        json!([{"Key": "kura:expires-before", "Values": ["2999-01-01T00:00:00Z"]}]),
    )
    .await;
    assert!(names.is_empty(), "{names:?}");
}

/// The expiry events a receiver got: (Event, DaysBefore), in order.
fn expiry_events(r: &Receiver) -> Vec<(String, Option<i64>)> {
    r.bodies()
        .iter()
        .map(|b| {
            (
                b["Event"].as_str().unwrap().to_string(),
                b["DaysBefore"].as_i64(),
            )
        })
        .collect()
}

fn expiring(days: &[i64]) -> Vec<(String, Option<i64>)> {
    days.iter()
        .map(|d| ("SecretExpiring".to_string(), Some(*d)))
        .collect()
}

/// Restarts the server on its data directory with the test clock, set to `at`.
async fn restart_at(server: Server, at: i64) -> Server {
    let tmp = server.stop().await;
    let server = Server::start_in_with(tmp, &["--test-clock"]).await;
    set_clock(&server, at).await;
    server
}

#[tokio::test]
async fn expiry_events_reach_each_target_once_on_the_days_it_asked_for_across_restarts() {
    let server = test_clock_server().await;
    let c = server.client().await;
    let default_days = Receiver::always(200).await;
    let fortnight = Receiver::always(200).await;
    ok_kura(
        &server,
        "CreateNotificationTarget",
        json!({"Url": default_days.url, "Events": ["SecretExpiring", "SecretExpired"]}),
    )
    .await;
    ok_kura(
        &server,
        "CreateNotificationTarget",
        json!({"Url": fortnight.url, "Events": ["SecretExpiring"], "ExpiringDays": [14]}),
    )
    .await;
    for (body, what) in [
        (
            json!({"Url": fortnight.url, "Events": ["SecretExpiring"], "ExpiringDays": [0]}),
            "from 1 to 365",
        ),
        (
            json!({"Url": fortnight.url, "Events": ["SecretExpiring"], "ExpiringDays": [400]}),
            "from 1 to 365",
        ),
        (
            json!({"Url": fortnight.url, "Events": ["SecretExpired"], "ExpiringDays": [3]}),
            "SecretExpiring",
        ),
        (
            json!({"Url": fortnight.url, "Events": ["SecretExpiring"], "ExpiringDays": []}),
            "1 to 10",
        ),
    ] {
        let msg = kura_err(
            &server,
            "CreateNotificationTarget",
            body.clone(),
            "InvalidParameterException",
        )
        .await;
        assert!(msg.contains(what), "{body}: {msg}");
    }
    let targets = ok_kura(&server, "ListNotificationTargets", json!({})).await;
    let mut days: Vec<Value> = targets["NotificationTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ExpiringDays"].clone())
        .collect();
    days.sort_by_key(|d| d.to_string());
    assert_eq!(days, [json!([14]), json!([30, 7, 1])], "{targets:#}");

    let arn = create_plain(&c, "api/expiring", "k-789").await;
    let expires = T2030 + 40 * DAY;
    ok_kura(
        &server,
        "SetSecretExpiration",
        json!({"SecretId": "api/expiring", "ExpirationDate": expires}),
    )
    .await;

    // A second before the 30-day notice: nothing; at it: the 30-day notice, once.
    set_clock(&server, expires - 30 * DAY - 1).await;
    assert!(default_days.requests().is_empty());
    set_clock(&server, expires - 30 * DAY).await;
    default_days
        .wait_until("the 30-day notice", |r| !r.is_empty())
        .await;
    set_clock(&server, expires - 29 * DAY).await;

    // A restart neither sends it again nor misses the 14-day notice it slept through.
    let server = restart_at(server, expires - 20 * DAY).await;
    let server = restart_at(server, expires - 13 * DAY).await;
    fortnight
        .wait_until("the 14-day notice", |r| !r.is_empty())
        .await;
    set_clock(&server, expires - 7 * DAY + 60).await;
    set_clock(&server, expires - DAY).await;
    default_days
        .wait_until("the 1-day notice", |r| r.len() >= 3)
        .await;
    set_clock(&server, expires).await;
    default_days
        .wait_until("the expired notice", |r| r.len() >= 4)
        .await;
    set_clock(&server, expires + 3 * DAY).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(
        expiry_events(&default_days),
        [
            expiring(&[30, 7, 1]),
            vec![("SecretExpired".to_string(), None)]
        ]
        .concat()
    );
    assert_eq!(expiry_events(&fortnight), expiring(&[14]));
    for b in default_days.bodies().iter().chain(&fortnight.bodies()) {
        assert_eq!(b["ARN"], arn.as_str(), "{b}");
        assert_eq!(b["Name"], "api/expiring", "{b}");
        assert_eq!(date(&b["ExpirationDate"]), Some(expires), "{b}");
    }
    assert!(
        default_days.requests()[0]
            .header("kura-signature")
            .is_some(),
        "signed like every notification"
    );
    let d = describe_json(&server, "api/expiring").await;
    assert_eq!(d["KuraState"], "Expired", "{d:#}");
}

fn rotate_certificate(arn: &str, id: &str) -> String {
    json!({"SecretId": id, "RotationLambdaARN": lambda_arn(arn, "kura-private-certificate")})
        .to_string()
}

async fn certificate_value(server: &Server, id: &str) -> Value {
    let c = server.client().await;
    let (_, text, _) = get_stage(&c, id, "AWSCURRENT").await;
    serde_json::from_str(&text).expect("a certificate secret's value is JSON")
}

fn template(name: &str, ttl: &str) -> Value {
    json!({
        "Name": name, "CertificateAuthority": "root", "Ttl": ttl, "MaxTtl": "365d",
        "AllowedDomains": [".example.test"], "KeyAlgorithm": "EC_P256", "KeyUsages": ["server"]
    })
}

/// Moves the clock on a few minutes at a time until the rotation stops (retries included).
async fn settle(server: &Server, id: &str) -> Value {
    for _ in 0..30 {
        let r = wait_rotation_settled(server, id, Duration::from_secs(60)).await;
        if r["State"] != "InProgress" {
            return r;
        }
        ok_kura(server, "AdvanceClock", json!({"Seconds": 600})).await;
    }
    panic!("the rotation of {id} did not stop")
}

#[tokio::test]
async fn a_certificate_without_rotation_rules_renews_before_it_expires_and_retries_daily() {
    let server = test_clock_server().await;
    let c = server.client().await;
    ok_kura(
        &server,
        "CreateCertificateAuthority",
        json!({"Name": "root", "Type": "root", "CommonName": "kura test root", "KeyAlgorithm": "EC_P256"}),
    )
    .await;
    ok_kura(
        &server,
        "CreateCertificateTemplate",
        template("long", "120d"),
    )
    .await;
    ok_kura(
        &server,
        "CreateCertificateTemplate",
        template("short", "30d"),
    )
    .await;
    let long_arn = create_plain(
        &c,
        "certs/long",
        &json!({"template": "long", "common_name": "a.example.test"}).to_string(),
    )
    .await;
    let short_arn = create_plain(
        &c,
        "certs/short",
        &json!({"template": "short", "common_name": "b.example.test"}).to_string(),
    )
    .await;
    for (arn, id) in [(&long_arn, "certs/long"), (&short_arn, "certs/short")] {
        server
            .raw("RotateSecret", &rotate_certificate(arn, id), SignMode::Root)
            .await
            .assert_ok();
        wait_rotation_succeeded(&server, id).await;
    }

    // Issued at T2030: 120 days renew 31 days before; 30 days at two thirds.
    let d = describe_json(&server, "certs/long").await;
    assert!(d.get("RotationRules").is_none(), "{d:#}");
    assert_eq!(
        date(&d["KuraExpirationDate"]),
        Some(T2030 + 120 * DAY),
        "{d:#}"
    );
    assert_eq!(
        date(&d["NextRotationDate"]),
        Some(T2030 + 89 * DAY),
        "{d:#}"
    );
    assert_eq!(d["KuraState"], "Active");
    assert_eq!(
        certificate_value(&server, "certs/long").await["expiration_date"],
        "2030-05-01T00:00:00Z"
    );
    let d = describe_json(&server, "certs/short").await;
    assert_eq!(
        date(&d["KuraExpirationDate"]),
        Some(T2030 + 30 * DAY),
        "{d:#}"
    );
    assert_eq!(
        date(&d["NextRotationDate"]),
        Some(T2030 + 20 * DAY),
        "{d:#}"
    );

    // A day before its renewal nothing happens; at it, a new certificate.
    let first = certificate_value(&server, "certs/short").await;
    set_clock(&server, T2030 + 19 * DAY).await;
    assert_eq!(
        certificate_value(&server, "certs/short").await["serial_number"],
        first["serial_number"]
    );
    set_clock(&server, T2030 + 20 * DAY).await;
    settle(&server, "certs/short").await;
    let renewed = certificate_value(&server, "certs/short").await;
    assert_ne!(renewed["serial_number"], first["serial_number"], "renewed");
    let d = describe_json(&server, "certs/short").await;
    let issued = date(&d["LastRotatedDate"]).expect("rotated");
    assert_eq!(
        date(&d["KuraExpirationDate"]),
        Some(issued + 30 * DAY),
        "{d:#}"
    );
    assert_eq!(
        date(&d["NextRotationDate"]),
        Some(issued + 20 * DAY),
        "{d:#}"
    );

    // The long one's renewal fails while its template is gone: retried a day later, daily,
    // and shown as failed meanwhile.
    let before = certificate_value(&server, "certs/long").await;
    ok_kura(
        &server,
        "DeleteCertificateTemplate",
        json!({"Name": "long"}),
    )
    .await;
    set_clock(&server, T2030 + 89 * DAY).await;
    let r = settle(&server, "certs/long").await;
    assert_eq!(r["State"], "Failed", "{r:#}");
    assert!(
        r["LastError"]
            .as_str()
            .unwrap_or("")
            .contains("does not exist"),
        "the error says why: {r:#}"
    );
    let d = describe_json(&server, "certs/long").await;
    assert_eq!(d["KuraState"], "Active, rotation failed", "{d:#}");
    let failed_at = date(&d["KuraRotation"]["LastAttemptDate"]).unwrap();
    let retry = date(&d["NextRotationDate"]).expect("a retry is planned");
    assert!(
        (retry - (failed_at + DAY)).abs() <= 1,
        "retried a day after the failure ({failed_at}): {d:#}"
    );
    set_clock(&server, retry).await;
    let r = settle(&server, "certs/long").await;
    assert_eq!(r["State"], "Failed", "{r:#}");
    let d = describe_json(&server, "certs/long").await;
    let failed_again = date(&d["KuraRotation"]["LastAttemptDate"]).unwrap();
    assert!(failed_again >= retry, "tried again at the retry: {d:#}");
    let retry = date(&d["NextRotationDate"]).expect("and again a day later");
    assert!((retry - (failed_again + DAY)).abs() <= 1, "{d:#}");
    assert_eq!(
        certificate_value(&server, "certs/long").await["serial_number"],
        before["serial_number"],
        "AWSCURRENT keeps the old certificate"
    );

    // Once the template is back, the next daily retry renews it.
    ok_kura(
        &server,
        "CreateCertificateTemplate",
        template("long", "120d"),
    )
    .await;
    set_clock(&server, retry).await;
    let r = settle(&server, "certs/long").await;
    assert_eq!(r["State"], "Succeeded", "{r:#}");
    let d = describe_json(&server, "certs/long").await;
    assert_eq!(d["KuraState"], "Active", "{d:#}");
    let issued = date(&d["LastRotatedDate"]).unwrap();
    assert_eq!(
        date(&d["KuraExpirationDate"]),
        Some(issued + 120 * DAY),
        "{d:#}"
    );
    assert_eq!(
        date(&d["NextRotationDate"]),
        Some(issued + 89 * DAY),
        "{d:#}"
    );
    assert_ne!(
        certificate_value(&server, "certs/long").await["serial_number"],
        before["serial_number"]
    );
}

#[tokio::test]
async fn a_users_key_swept_a_week_after_it_expired_is_audited_and_logged() {
    let server = test_clock_server().await;
    ok_kura(&server, "CreateUser", json!({"UserName": "temp"})).await;
    let key = ok_kura(
        &server,
        "CreateAccessKey",
        json!({"UserName": "temp", "ExpiresIn": "1h"}),
    )
    .await;
    let akid = key["AccessKey"]["AccessKeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = key["AccessKey"]["SecretAccessKey"]
        .as_str()
        .unwrap()
        .to_string();
    let swept = || async {
        ok_kura(
            &server,
            "LookupAuditEvents",
            json!({"Action": "job:DeleteExpiredAccessKey"}),
        )
        .await["Events"]
            .as_array()
            .unwrap()
            .clone()
    };

    // Expired, but kept (and listed) for a week.
    set_clock(&server, T2030 + 3600 + 6 * DAY).await;
    assert!(swept().await.is_empty());
    let listed = ok_kura(&server, "ListAccessKeys", json!({"UserName": "temp"})).await;
    assert_eq!(listed["AccessKeyMetadata"].as_array().unwrap().len(), 1);

    set_clock(&server, T2030 + 3600 + 7 * DAY + 60).await;
    let records = swept().await;
    assert_eq!(records.len(), 1, "{records:#?}");
    let r = &records[0];
    assert_eq!(r["AccessKeyId"], akid.as_str(), "{r:#}");
    assert_eq!(r["Principal"], "kura", "{r:#}");
    assert_eq!(r["Outcome"], "Success", "{r:#}");
    assert!(
        r["Resource"].as_str().unwrap().ends_with(":user/temp"),
        "{r:#}"
    );
    assert!(!r.to_string().contains(&secret), "no secret material");
    let listed = ok_kura(&server, "ListAccessKeys", json!({"UserName": "temp"})).await;
    assert!(listed["AccessKeyMetadata"].as_array().unwrap().is_empty());
    let log = server.log();
    assert!(
        log.contains("deleted an access key a week after it expired") && log.contains(&akid),
        "an info line names the key"
    );
    assert!(
        !log.contains(&secret),
        "the secret half never reaches the log"
    );
}

#[tokio::test]
async fn kura_secret_expire_sets_shows_and_clears_an_expiration() {
    let server = test_clock_server().await;
    let c = server.client().await;
    create_plain(&c, "api/cli-key", "k-cli-0f9e8d7c").await;
    let cli = Cli::new(&server);
    cli.secret(&["expire", "api/cli-key", "2030-06-30T00:00:00Z"])
        .ok();
    let d = describe_json(&server, "api/cli-key").await;
    assert_eq!(date(&d["KuraExpirationDate"]), Some(1_909_008_000), "{d:#}");
    let shown = cli
        .secret(&["describe", "api/cli-key", "--output", "table"])
        .ok()
        .text();
    assert!(
        shown.contains("Expires") && shown.contains("Active"),
        "{shown}"
    );
    cli.secret(&["expire", "api/cli-key", "1909094400"]).ok();
    let d = describe_json(&server, "api/cli-key").await;
    assert_eq!(date(&d["KuraExpirationDate"]), Some(1_909_094_400), "{d:#}");
    let msg = cli.secret(&["expire", "api/cli-key", "next week"]).fails(2);
    assert!(msg.contains("not a time"), "{msg}");
    cli.secret(&["expire", "api/cli-key", "--clear"]).ok();
    let d = describe_json(&server, "api/cli-key").await;
    assert!(d.get("KuraExpirationDate").is_none(), "{d:#}");
}
