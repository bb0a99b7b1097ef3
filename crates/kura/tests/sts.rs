//! STS GetCallerIdentity on AWS's query protocol (the AWS CLI, boto3 and raw signed requests),
//! IAM-style user ids (`AIDA…`) and the `aws:userid` condition key.

mod common;

use std::process::Command;
use std::time::SystemTime;

use common::*;
use serde_json::{Value, json};

const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";
const CALLER_IDENTITY: &str = "Action=GetCallerIdentity&Version=2011-06-15";

fn is_user_id(id: &str) -> bool {
    id.len() == 20
        && id.starts_with("AIDA")
        && id[4..]
            .chars()
            .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
}

/// A user with one access key: (UserId from CreateUser, access key id, secret).
async fn user_with_key(server: &Server, name: &str) -> (String, String, String) {
    let created = server
        .kura("CreateUser", &json!({"UserName": name}).to_string())
        .await
        .assert_ok();
    let user_id = created["User"]["UserId"]
        .as_str()
        .unwrap_or_else(|| panic!("CreateUser answers a UserId: {created}"))
        .to_string();
    let (akid, secret) = create_access_key(server, name).await;
    (user_id, akid, secret)
}

fn user_ids(server_users: &Value) -> Vec<(String, String)> {
    server_users["Users"]
        .as_array()
        .expect("Users")
        .iter()
        .map(|u| {
            (
                u["UserName"].as_str().unwrap_or_default().to_string(),
                u["UserId"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Runs `aws sts get-caller-identity` against the server with the given key.
fn cli_identity(server: &Server, akid: &str, secret: &str) -> Value {
    let out = Command::new("aws")
        .args([
            "sts",
            "get-caller-identity",
            "--endpoint-url",
            &server.endpoint(),
            "--region",
            REGION,
            "--output",
            "json",
        ])
        .env("AWS_ACCESS_KEY_ID", akid)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_STS")
        .output()
        .expect("run aws");
    assert!(
        out.status.success(),
        "aws sts get-caller-identity failed: {}\n--- server log ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    serde_json::from_slice(&out.stdout).expect("JSON from the AWS CLI")
}

#[tokio::test]
async fn aws_cli_sts_get_caller_identity_names_root_and_users_by_their_ids() {
    if !have("aws") {
        return;
    }
    let server = Server::start().await;
    let root = server.credentials();
    let me = cli_identity(&server, &root.access_key_id, &root.secret_access_key);
    let users = server.kura("ListUsers", "{}").await.assert_ok();
    let root_id = user_ids(&users)
        .into_iter()
        .find(|(name, _)| name == "root")
        .map(|(_, id)| id)
        .expect("root is listed");
    assert!(is_user_id(&root_id), "{root_id}");
    let kura_me = server.kura("GetCallerIdentity", "{}").await.assert_ok();
    assert_eq!(me["UserId"], json!(root_id), "{me}");
    assert_eq!(kura_me["UserId"], json!(root_id), "{kura_me}");
    assert_eq!(me["Account"], kura_me["Account"]);
    assert_eq!(me["Arn"], kura_me["Arn"]);
    assert!(me["Arn"].as_str().unwrap().ends_with(":root"), "{me}");

    let (dana_id, akid, secret) = user_with_key(&server, "dana").await;
    assert!(is_user_id(&dana_id) && dana_id != root_id, "{dana_id}");
    let dana = cli_identity(&server, &akid, &secret);
    assert_eq!(dana["UserId"], json!(dana_id));
    assert!(
        dana["Arn"].as_str().unwrap().ends_with(":user/dana"),
        "{dana}"
    );

    // Audited like every request, as sts:GetCallerIdentity, allowed without any policy.
    let audit = std::fs::read_to_string(server.data_dir.join("audit.jsonl")).unwrap();
    let sts: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["Action"] == "sts:GetCallerIdentity")
        .collect();
    assert_eq!(sts.len(), 2, "{audit}");
    assert!(
        sts.iter()
            .all(|r| r["Decision"] == "Allow" && r["Outcome"] == "Success")
    );
    assert!(
        sts[1]["Principal"]
            .as_str()
            .unwrap()
            .ends_with(":user/dana")
    );
    assert_eq!(sts[1]["AccessKeyId"], json!(akid));
}

#[tokio::test]
async fn boto3_sts_get_caller_identity_and_its_errors() {
    if !have("python3") || !have("aws") {
        return;
    }
    let server = Server::start().await;
    let (dana_id, akid, secret) = user_with_key(&server, "dana").await;
    let script = r#"
import os, sys
import boto3, botocore.exceptions
from botocore.config import Config
def sts(key, secret):
    return boto3.client("sts", endpoint_url=os.environ["KURA_ENDPOINT"], region_name="us-east-1",
        aws_access_key_id=key, aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}))
me = sts(os.environ["AKID"], os.environ["SECRET"]).get_caller_identity()
print(me["UserId"], me["Arn"], me["Account"])
try:
    sts("AKIANOSUCHKEY0000000", "x" * 40).get_caller_identity()
    sys.exit("an unknown key was accepted")
except botocore.exceptions.ClientError as e:
    print(e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
try:
    sts(os.environ["AKID"], "wrong" * 8).get_caller_identity()
    sys.exit("a wrong secret was accepted")
except botocore.exceptions.ClientError as e:
    print(e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .env("KURA_ENDPOINT", server.endpoint())
        .env("AKID", &akid)
        .env("SECRET", &secret)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_STS")
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let account = server.kura("GetCallerIdentity", "{}").await.assert_ok()["Account"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        lines,
        [
            format!("{dana_id} arn:aws:iam::{account}:user/dana {account}").as_str(),
            "InvalidClientTokenId 403",
            "SignatureDoesNotMatch 403",
        ]
    );
}

/// A form POST signed for `service` with the root key.
async fn form_post(server: &Server, service: &str, body: &str, sign: bool) -> RawResponse {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign as sigv4};
    use aws_sigv4::sign::v4;
    let url = format!("{}/", server.endpoint());
    let host = server.addr.to_string();
    let mut request = reqwest::Client::new()
        .post(&url)
        .header("content-type", FORM)
        .body(body.to_string());
    if sign {
        let c = server.credentials();
        let identity = aws_sdk_secretsmanager::config::Credentials::new(
            &c.access_key_id,
            &c.secret_access_key,
            None,
            None,
            "kura-tests",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(REGION)
            .name(service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("signing params")
            .into();
        let headers = [("content-type", FORM), ("host", host.as_str())];
        let signable = SignableRequest::new(
            "POST",
            &url,
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .expect("signable");
        let (instructions, _) = sigv4(signable, &params).expect("sign").into_parts();
        for h in instructions.headers() {
            request = request.header(h.0, h.1);
        }
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.expect("body");
    RawResponse {
        status,
        headers,
        body,
    }
}

fn xml_field<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

#[tokio::test]
async fn sts_answers_in_xml_and_errors_in_sts_error_shape() {
    let server = Server::start().await;
    let ok = form_post(&server, "sts", CALLER_IDENTITY, true).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.header("content-type"), Some("text/xml"));
    assert!(
        ok.body.starts_with(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
        ),
        "{}",
        ok.body
    );
    assert!(
        is_user_id(xml_field(&ok.body, "UserId").unwrap()),
        "{}",
        ok.body
    );
    assert_eq!(
        xml_field(&ok.body, "RequestId"),
        ok.header("x-amzn-RequestId")
    );

    let cases = [
        (
            "sts",
            "Action=GetCallerIdentity&Version=2011-06-15",
            false,
            403,
            "MissingAuthenticationToken",
        ),
        (
            "sts",
            "Action=AssumeRole&Version=2011-06-15",
            true,
            400,
            "InvalidAction",
        ),
        (
            "sts",
            "Action=GetCallerIdentity&Version=2010-01-01",
            true,
            400,
            "InvalidAction",
        ),
        ("sts", "Version=2011-06-15", true, 400, "InvalidAction"),
        // Signed for another service: the scope must say sts.
        (
            "secretsmanager",
            CALLER_IDENTITY,
            true,
            403,
            "SignatureDoesNotMatch",
        ),
    ];
    for (service, body, sign, status, code) in cases {
        let r = form_post(&server, service, body, sign).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(
            r.body
                .starts_with("<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"),
            "{}",
            r.body
        );
        assert_eq!(xml_field(&r.body, "Type"), Some("Sender"), "{}", r.body);
        assert_eq!(xml_field(&r.body, "Code"), Some(code), "{}", r.body);
        assert!(!xml_field(&r.body, "Message").unwrap_or("").is_empty());
        assert_eq!(
            xml_field(&r.body, "RequestId"),
            r.header("x-amzn-RequestId")
        );
    }
    // Every one of them is audited; refused ones with their error code.
    let audit = std::fs::read_to_string(server.data_dir.join("audit.jsonl")).unwrap();
    let codes: Vec<String> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["Action"].as_str().is_some_and(|a| a.starts_with("sts:")))
        .map(|r| r["ErrorCode"].as_str().unwrap_or("-").to_string())
        .collect();
    assert_eq!(codes.len(), 1 + cases.len(), "{audit}");
    // A refused signature is recorded with the key id it claimed, as on the JSON door.
    let claimed: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["ErrorCode"] == "InvalidSignatureException")
        .collect();
    assert_eq!(claimed.len(), 1, "{audit}");
    assert_eq!(
        claimed[0]["AccessKeyId"],
        json!(server.credentials().access_key_id),
        "{audit}"
    );
}

#[tokio::test]
async fn user_ids_are_unique_iam_style_ids_and_aws_userid_holds_them() {
    let server = Server::start().await;
    let root = server.client().await;
    let arn = create_plain(&root, "ids/db", "versioned-value-1").await;
    let (erin_id, akid, secret) = user_with_key(&server, "erin").await;
    let (frank_id, frank_akid, frank_secret) = user_with_key(&server, "frank").await;
    assert!(is_user_id(&erin_id) && is_user_id(&frank_id) && erin_id != frank_id);
    let listed = user_ids(&server.kura("ListUsers", "{}").await.assert_ok());
    assert!(
        listed.contains(&("erin".to_string(), erin_id.clone())),
        "{listed:?}"
    );
    let who = server
        .raw_as(&akid, &secret, "Kura.GetCallerIdentity", "{}")
        .await
        .assert_ok();
    assert_eq!(who["UserId"], json!(erin_id));

    // aws:userid is the id, so a policy can name a user by it (and not by name).
    for (user, value) in [("erin", erin_id.as_str()), ("frank", "frank")] {
        let doc = json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": arn,
            "Condition": {"StringEquals": {"aws:userid": value}}}]});
        server
            .kura(
                "PutUserPolicy",
                &json!({"UserName": user, "PolicyName": "by-id", "PolicyDocument": doc.to_string()})
                    .to_string(),
            )
            .await
            .assert_ok();
    }
    let body = json!({"SecretId": "ids/db"}).to_string();
    let erin = server
        .raw_as(&akid, &secret, "secretsmanager.GetSecretValue", &body)
        .await
        .assert_ok();
    assert_eq!(erin["SecretString"], "versioned-value-1");
    server
        .raw_as(
            &frank_akid,
            &frank_secret,
            "secretsmanager.GetSecretValue",
            &body,
        )
        .await
        .assert_error("AccessDeniedException");
}

#[tokio::test]
async fn users_made_before_ids_existed_get_one_on_upgrade() {
    if !have("sqlite3") {
        return;
    }
    let server = Server::start().await;
    let (_, akid, secret) = user_with_key(&server, "gail").await;
    let tmp = server.stop().await;
    let db = tmp.path().join("data").join("kura.db");
    // The schema as it was before user ids.
    sqlite(
        &db,
        "DROP INDEX users_user_id; ALTER TABLE users DROP COLUMN user_id; \
         DELETE FROM schema_migrations WHERE version = 9;",
    );
    let server = Server::start_in(tmp).await;
    let listed = user_ids(&server.kura("ListUsers", "{}").await.assert_ok());
    assert!(listed.len() >= 2, "{listed:?}");
    assert!(listed.iter().all(|(_, id)| is_user_id(id)), "{listed:?}");
    let mut ids: Vec<&String> = listed.iter().map(|(_, id)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), listed.len(), "{listed:?}");
    let gail = server
        .raw_as(&akid, &secret, "Kura.GetCallerIdentity", "{}")
        .await
        .assert_ok();
    let gail_id = listed.iter().find(|(n, _)| n == "gail").map(|(_, id)| id);
    assert_eq!(gail["UserId"].as_str(), gail_id.map(String::as_str));
}
