//! Transport and authentication hardening (issue 10): what the signature must cover, what an
//! AccessDenied may reveal, connection timeouts and limits, oversized requests.

mod common;

use common::*;

/// Sends `POST /` with exactly these headers (plus what reqwest adds: content-length,
/// accept) and `body`.
async fn post(server: &Server, headers: &[(&str, String)], body: &str) -> RawResponse {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("reqwest client");
    let mut request = client
        .post(format!("{}/", server.endpoint()))
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.expect("read body");
    RawResponse {
        status,
        headers,
        body,
    }
}

/// Issue 10, point 1: a DescribeSecret signed over `host;x-amz-date` only, resent with
/// `X-Amz-Target: secretsmanager.GetSecretValue`, used to return the value.
#[tokio::test]
async fn a_signature_that_leaves_out_x_amz_target_is_refused() {
    let server = Server::start().await;
    let client = server.client().await;
    let value = "retarget-me-7c1f2a9e";
    remember_value(value);
    create_plain(&client, "retarget", value).await;

    let creds = server.credentials();
    let host = server.addr.to_string();
    let now = chrono::Utc::now();
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let body = r#"{"SecretId":"retarget"}"#;
    let signed = [("host", host.as_str()), ("x-amz-date", amz_date.as_str())];
    let authorization = kura_iam::sigv4::authorization_header(
        &kura_iam::sigv4::Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &signed,
            body: body.as_bytes(),
        },
        &creds.access_key_id,
        &creds.secret_access_key,
        REGION,
        "secretsmanager",
        &amz_date,
    )
    .expect("sign");
    assert!(
        authorization.contains("SignedHeaders=host;x-amz-date,"),
        "{authorization}"
    );

    for target in [
        "secretsmanager.GetSecretValue",
        "secretsmanager.DescribeSecret",
    ] {
        let resp = post(
            &server,
            &[
                ("x-amz-date", amz_date.clone()),
                ("x-amz-target", target.to_string()),
                ("authorization", authorization.clone()),
            ],
            body,
        )
        .await;
        assert!(!resp.body.contains(value), "{target} leaked the value");
        let message = resp.assert_error("IncompleteSignatureException");
        assert_eq!(
            message,
            "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization."
        );
    }
    // What the SDK signs still works.
    assert_eq!(get_string(&client, "retarget").await, value);
}

/// Issue 10, point 4: AccessDenied named an existing secret by its full ARN (random suffix
/// included) and a missing one by the name asked for, so a caller allowed nothing could tell
/// which secrets exist. Both answers must be alike but for the id the caller sent.
#[tokio::test]
async fn access_denied_does_not_tell_whether_a_secret_exists() {
    let server = Server::start().await;
    let root = server.client().await;
    let arn = create_plain(&root, "team/exists", "exists-value-5d1e").await;
    server
        .kura("CreateUser", r#"{"UserName":"nobody"}"#)
        .await
        .assert_ok();
    let key = server
        .kura("CreateAccessKey", r#"{"UserName":"nobody"}"#)
        .await
        .assert_ok();
    let akid = key["AccessKey"]["AccessKeyId"].as_str().unwrap();
    let secret = key["AccessKey"]["SecretAccessKey"].as_str().unwrap();
    let partial = arn
        .rsplit_once('-')
        .expect("ARN with a suffix")
        .0
        .to_string();
    let missing_partial = partial.replace("team/exists", "team/missin");

    for op in ["GetSecretValue", "DescribeSecret", "PutSecretValue"] {
        for (existing, missing) in [
            ("team/exists", "team/missin"),
            (partial.as_str(), missing_partial.as_str()),
        ] {
            let answer = async |id: &str| {
                let body = serde_json::json!({"SecretId": id, "SecretString": "x"}).to_string();
                let target = format!("secretsmanager.{op}");
                let resp = server.raw_as(akid, secret, &target, &body).await;
                resp.assert_error("AccessDeniedException")
                    .replace(id, "<ID>")
            };
            let (a, b) = (answer(existing).await, answer(missing).await);
            assert_eq!(a, b, "{op} on {existing} vs {missing}");
            assert!(a.contains("on resource: <ID> "), "{a}");
            let suffix = arn.rsplit_once('-').unwrap().1;
            assert!(!a.contains(suffix), "{a}");
        }
    }
}
