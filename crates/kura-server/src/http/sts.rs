//! The STS door: `GetCallerIdentity` on AWS's query protocol (`POST /`, form-encoded
//! `Action=GetCallerIdentity&Version=2011-06-15`, signed for the service `sts`, answered in
//! XML), so `aws sts get-caller-identity --endpoint-url …` and tools that validate their
//! credentials through STS (the Secrets Manager Agent) work against kura. Like on AWS it needs
//! no permission; like every request it is audited (`sts:GetCallerIdentity`).

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kura_core::{Error, ErrorCode};

use super::Received;
use crate::service::{Caller, Operation, Outcome};

pub const SERVICE_NAME: &str = "sts";
const VERSION: &str = "2011-06-15";
const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// The query protocol's form parameters are short; more than this is not an STS call.
const MAX_FIELD_CHARS: usize = 256;

/// Whether a `POST /` is a query-protocol (form-encoded) call rather than an awsJson one: no
/// `X-Amz-Target`, and a form body. Only STS speaks that protocol here.
pub fn is_query_request(headers: &HeaderMap) -> bool {
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    form && !headers.contains_key("x-amz-target")
}

/// What the form says, read without copying anything long.
#[derive(Default)]
struct Form {
    action: Option<String>,
    version: Option<String>,
}

fn read_form(body: &[u8]) -> Form {
    let mut form = Form::default();
    for (k, v) in url::form_urlencoded::parse(body) {
        let v: String = v.chars().take(MAX_FIELD_CHARS).collect();
        match k.as_ref() {
            "Action" => form.action = Some(v),
            "Version" => form.version = Some(v),
            _ => {}
        }
    }
    form
}

pub async fn serve(req: Received, body: &[u8]) -> Response {
    let service = &req.live.service;
    let form = read_form(body);
    let action = format!("sts:{}", shown(form.action.as_deref().unwrap_or_default()));
    let principal = match req.authenticate(body, SERVICE_NAME).await {
        Ok(p) => p,
        Err(e) => {
            let e = service.refuse(&req.info, None, &action, "*", e).await;
            return error_xml(&e, &req.info.id);
        }
    };
    if let Err(e) = check_action(&form) {
        let e = service
            .refuse(&req.info, Some(&principal), &action, "*", e)
            .await;
        return error_xml(&e, &req.info.id);
    }
    let caller = Caller::new(principal, req.info.clone());
    let op = Operation::StsGetCallerIdentity(crate::service::types::Empty {});
    match service.call(&caller, op).await {
        Ok(Outcome::StsGetCallerIdentity(id)) => (
            [("content-type", "text/xml")],
            identity_xml(&id.arn, &id.user_id, &id.account, &req.info.id),
        )
            .into_response(),
        Ok(_) => error_xml(
            &Error::internal("GetCallerIdentity answered with another operation's outcome"),
            &req.info.id,
        ),
        Err(e) => error_xml(&e, &req.info.id),
    }
}

/// An action name as it may appear in a log line or an audit record: short and plain.
fn shown(action: &str) -> String {
    let plain = !action.is_empty() && action.chars().all(|c| c.is_ascii_alphanumeric());
    if plain {
        action.chars().take(64).collect()
    } else {
        "-".into()
    }
}

fn check_action(form: &Form) -> Result<(), Error> {
    let action = form.action.as_deref().unwrap_or("");
    if action.is_empty() {
        return Err(Error::new(
            ErrorCode::UnknownOperation,
            "The request must contain the parameter Action (kura's STS door serves Action=GetCallerIdentity).",
        ));
    }
    let version = form.version.as_deref().unwrap_or("");
    if action != "GetCallerIdentity" || version != VERSION {
        return Err(Error::new(
            ErrorCode::UnknownOperation,
            format!(
                "Could not find operation {} for version {}: kura's STS door serves only GetCallerIdentity, version {VERSION}.",
                shown(action),
                if version.is_empty() {
                    "NO_VERSION_SPECIFIED".into()
                } else {
                    shown(version)
                }
            ),
        ));
    }
    Ok(())
}

fn identity_xml(arn: &str, user_id: &str, account: &str, request_id: &str) -> String {
    format!(
        "<GetCallerIdentityResponse xmlns=\"{XMLNS}\">\n  <GetCallerIdentityResult>\n    \
         <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{}</Account>\n  \
         </GetCallerIdentityResult>\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  \
         </ResponseMetadata>\n</GetCallerIdentityResponse>\n",
        escape(arn),
        escape(user_id),
        escape(account),
        escape(request_id)
    )
}

/// STS's error codes and statuses for kura's errors.
fn sts_code(e: &Error) -> (&'static str, StatusCode, &'static str) {
    use ErrorCode::*;
    match e.code {
        MissingAuthenticationToken => (
            "MissingAuthenticationToken",
            StatusCode::FORBIDDEN,
            "Sender",
        ),
        IncompleteSignature => ("IncompleteSignature", StatusCode::BAD_REQUEST, "Sender"),
        InvalidSignature => ("SignatureDoesNotMatch", StatusCode::FORBIDDEN, "Sender"),
        UnrecognizedClient if e.message.contains("expired") => {
            ("ExpiredToken", StatusCode::BAD_REQUEST, "Sender")
        }
        UnrecognizedClient => ("InvalidClientTokenId", StatusCode::FORBIDDEN, "Sender"),
        UnknownOperation => ("InvalidAction", StatusCode::BAD_REQUEST, "Sender"),
        InternalServiceError => (
            "InternalFailure",
            StatusCode::INTERNAL_SERVER_ERROR,
            "Receiver",
        ),
        _ => (e.code.as_str(), super::aws::status_of(e.code), "Sender"),
    }
}

/// `<ErrorResponse><Error><Type>…<Code>…<Message>…</Error><RequestId>…`, as STS answers.
fn error_xml(e: &Error, request_id: &str) -> Response {
    let (code, status, kind) = sts_code(e);
    let body = format!(
        "<ErrorResponse xmlns=\"{XMLNS}\">\n  <Error>\n    <Type>{kind}</Type>\n    \
         <Code>{code}</Code>\n    <Message>{}</Message>\n  </Error>\n  \
         <RequestId>{}</RequestId>\n</ErrorResponse>\n",
        escape(&e.message),
        escape(request_id)
    );
    (status, [("content-type", "text/xml")], body).into_response()
}

/// XML text escaping: the five characters XML reserves.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Form {
        read_form(body.as_bytes())
    }

    #[test]
    fn query_requests_are_form_posts_without_a_target() {
        let mut h = HeaderMap::new();
        assert!(!is_query_request(&h));
        h.insert(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8"
                .parse()
                .unwrap(),
        );
        assert!(is_query_request(&h));
        h.insert(
            "x-amz-target",
            "secretsmanager.ListSecrets".parse().unwrap(),
        );
        assert!(!is_query_request(&h));
    }

    #[test]
    fn actions_and_versions() {
        assert!(check_action(&form("Action=GetCallerIdentity&Version=2011-06-15")).is_ok());
        let e = check_action(&form("Action=AssumeRole&Version=2011-06-15")).unwrap_err();
        assert!(e.message.contains("AssumeRole"), "{}", e.message);
        assert_eq!(sts_code(&e).0, "InvalidAction");
        let e = check_action(&form("Action=GetCallerIdentity")).unwrap_err();
        assert!(e.message.contains("NO_VERSION_SPECIFIED"), "{}", e.message);
        let e = check_action(&form("Version=2011-06-15")).unwrap_err();
        assert!(e.message.contains("Action"), "{}", e.message);
        // Hostile names are not echoed.
        let e = check_action(&form("Action=%3Cscript%3E&Version=2011-06-15")).unwrap_err();
        assert!(!e.message.contains('<'), "{}", e.message);
    }

    #[test]
    fn xml_is_escaped() {
        let xml = identity_xml("arn:a<b>&\"'", "AIDA", "123456789012", "r");
        assert!(
            xml.contains("<Arn>arn:a&lt;b&gt;&amp;&quot;&apos;</Arn>"),
            "{xml}"
        );
    }
}
