//! Rotation with user-defined functions, end to end: an AWS-style Python Lambda run as a `command`
//! function (success, retries and failure, crashes of the server in every step), the scope of the
//! credentials a function gets, `webhook` functions served by a test HTTP receiver, signed
//! notifications with retries, and the validation of Kura.CreateRotationFunction.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use common::*;
use serde_json::{Value, json};
use tempfile::TempDir;

const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];
/// Longest wait for a rotation to settle, a file to appear or a request to arrive.
const SETTLE: Duration = Duration::from_secs(20);
/// Signature timestamps must be this close to real time (the test clock stays close to it too).
const SIGNATURE_TOLERANCE_SECS: i64 = 300;

// ---------------------------------------------------------------------------------------------------------
// Helpers: the Python fixture's control directory
// ---------------------------------------------------------------------------------------------------------

/// The control directory (`ROTATION_CONTROL_DIR`) and target file (`ROTATION_TARGET_FILE`) of one
/// Python fixture function.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::Builder::new()
                .prefix("kura-rotation-ctl-")
                .tempdir()
                .expect("create control dir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn target(&self) -> PathBuf {
        self.file("target")
    }

    fn touch(&self, name: &str) {
        std::fs::write(self.file(name), b"").expect("create control file");
    }

    fn remove(&self, name: &str) {
        std::fs::remove_file(self.file(name)).expect("remove control file");
    }

    /// The fixture's `log`: one (step, token) per invocation that got past the test hooks.
    fn log(&self) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(self.file("log")).unwrap_or_default();
        text.lines()
            .map(|l| {
                let (step, token) = l
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("malformed log line {l:?}"));
                (step.to_string(), token.to_string())
            })
            .collect()
    }

    /// The sha256 hex the fixture's setSecret wrote to the target file.
    fn target_fingerprint(&self) -> String {
        std::fs::read_to_string(self.target())
            .unwrap_or_else(|e| panic!("read the target file: {e}"))
            .trim()
            .to_string()
    }
}

/// Creates a `command` function running the Python fixture with its own control directory.
async fn python_function(server: &Server, python: &Path, name: &str, max_attempts: i64) -> Fixture {
    let fixture = Fixture::new();
    let control = fixture.path().to_str().unwrap().to_string();
    let target = fixture.target().to_str().unwrap().to_string();
    create_python_function(
        server,
        python,
        name,
        &[
            ("ROTATION_CONTROL_DIR", &control),
            ("ROTATION_TARGET_FILE", &target),
        ],
        max_attempts,
    )
    .await;
    fixture
}

/// The log a cycle with `token` leaves when every step ran exactly once.
fn full_cycle(token: &str) -> Vec<(String, String)> {
    STEPS
        .iter()
        .map(|s| (s.to_string(), token.to_string()))
        .collect()
}

async fn wait_for_file(path: &Path, server: &Server) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    while !path.exists() {
        if tokio::time::Instant::now() >= deadline {
            let d = list_secrets_dump(server).await;
            panic!(
                "{} did not appear within {SETTLE:?}; rotation state: {d}\n--- server log ---\n{}",
                path.display(),
                server.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A ListSecrets dump for failure messages.
async fn list_secrets_dump(server: &Server) -> String {
    server
        .raw("ListSecrets", "{}", SignMode::Root)
        .await
        .body
        .clone()
}

/// Whether process `pid` has exited (gone, or a zombie nobody reaped yet).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

async fn wait_process_gone(pid: u32, what: &str) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    while !process_gone(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} (pid {pid}) still runs {SETTLE:?} after the server was killed"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ---------------------------------------------------------------------------------------------------------
// Helpers: rotation
// ---------------------------------------------------------------------------------------------------------

/// RotateSecret (immediately) with a function and a token; asserts the answer names the token.
async fn rotate(client: &Client, id: &str, function_arn: &str, token: &str) {
    let out = ok(client
        .rotate_secret()
        .secret_id(id)
        .rotation_lambda_arn(function_arn)
        .client_request_token(token)
        .send()
        .await);
    assert_eq!(
        out.version_id(),
        Some(token),
        "RotateSecret must answer with the token's version"
    );
}

/// Waits until the rotation settles and asserts its state.
async fn expect_state(server: &Server, id: &str, state: &str) -> Value {
    let r = wait_rotation_settled(server, id, SETTLE).await;
    assert_eq!(
        r["State"],
        state,
        "rotation of {id}: unexpected state {r:#}\n--- server log ---\n{}",
        server.log()
    );
    r
}

fn last_error(r: &Value) -> String {
    r["LastError"]
        .as_str()
        .unwrap_or_else(|| panic!("KuraRotation without LastError: {r:#}"))
        .to_string()
}

fn epoch(r: &Value, field: &str) -> f64 {
    r[field]
        .as_f64()
        .unwrap_or_else(|| panic!("KuraRotation without numeric {field}: {r:#}"))
}

async fn advance_clock(server: &Server, seconds: i64) {
    server
        .kura("AdvanceClock", &json!({ "Seconds": seconds }).to_string())
        .await
        .assert_ok();
}

/// The versions that carry `stage`.
fn carrying(stages: &Stages, stage: &str) -> Vec<String> {
    stages
        .iter()
        .filter(|(_, labels)| labels.iter().any(|l| l == stage))
        .map(|(id, _)| id.clone())
        .collect()
}

use common::receiver::*;

/// Asserts a signed POST from kura: method, content type, `kura-event`, a valid signature with a
/// timestamp near now; returns the body as JSON.
fn assert_signed(request: &Received, secret: &str, kind: &str) -> Value {
    assert_eq!(request.method, "POST", "{request:?}");
    assert_eq!(request.path, "/hook", "{request:?}");
    assert_eq!(
        request.header("content-type"),
        Some("application/json"),
        "{request:?}"
    );
    assert_eq!(request.header("kura-event"), Some(kind), "{request:?}");
    let t = check_signature(secret, request).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        (t - now_secs()).abs() <= SIGNATURE_TOLERANCE_SECS,
        "signature timestamp {t} is far from now ({})",
        now_secs()
    );
    assert!(
        check_signature("some-other-signing-secret", request).is_err(),
        "a signature must not verify with another secret"
    );
    request.json()
}

// ---------------------------------------------------------------------------------------------------------
// 1. A Python Lambda-style command function rotates secrets end to end
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn python_command_function_rotates_plain_and_json_secrets() {
    let Some(python) = python_with_boto3() else {
        return;
    };
    let server = Server::start().await;
    let c = server.client().await;
    let plain = python_function(&server, &python, "py-plain", 1).await;
    let structured = python_function(&server, &python, "py-json", 1).await;

    let (plain_arn, plain_v1) = create_string(&c, "fn/plain", "initial-password", &token(1)).await;
    let initial_json =
        json!({"username": "app", "password": "initial-password", "host": "db.internal"})
            .to_string();
    let (json_arn, json_v1) = create_string(&c, "fn/json", &initial_json, &token(1)).await;

    rotate(
        &c,
        "fn/plain",
        &lambda_arn(&plain_arn, "py-plain"),
        &token(2),
    )
    .await;
    rotate(&c, "fn/json", &lambda_arn(&json_arn, "py-json"), &token(2)).await;
    expect_state(&server, "fn/plain", "Succeeded").await;
    expect_state(&server, "fn/json", "Succeeded").await;

    for (id, arn, v1, old, fixture, function) in [
        (
            "fn/plain",
            &plain_arn,
            &plain_v1,
            "initial-password",
            &plain,
            "py-plain",
        ),
        (
            "fn/json",
            &json_arn,
            &json_v1,
            initial_json.as_str(),
            &structured,
            "py-json",
        ),
    ] {
        let (current, value, _) = get_stage(&c, id, "AWSCURRENT").await;
        assert_eq!(
            current,
            token(2),
            "{id}: AWSCURRENT must be on the token's version"
        );
        assert_ne!(value, old, "{id}: the value must have changed");
        let (previous, previous_value, _) = get_stage(&c, id, "AWSPREVIOUS").await;
        assert_eq!(
            (previous.as_str(), previous_value.as_str()),
            (v1.as_str(), old),
            "{id}"
        );
        assert_eq!(
            describe_stages(&c, id).await,
            stages_of(&[
                (v1, &["AWSPREVIOUS"]),
                (&token(2), &["AWSCURRENT", "AWSPENDING"]),
            ]),
            "{id}: labels after the rotation (AWSPENDING stays on the new version, as on AWS)"
        );
        assert_eq!(
            fixture.target_fingerprint(),
            sha256_hex(&value),
            "{id}: setSecret must have installed the new AWSCURRENT value in the target system"
        );
        assert_eq!(
            fixture.log(),
            full_cycle(&token(2)),
            "{id}: every step exactly once, with the token"
        );

        let d = describe_json(&server, id).await;
        assert_eq!(d["RotationEnabled"], true, "{d:#}");
        assert_eq!(d["RotationLambdaARN"], lambda_arn(arn, function), "{d:#}");
        assert!(d["LastRotatedDate"].is_number(), "{d:#}");
        let r = &d["KuraRotation"];
        assert!(r.get("LastError").is_none(), "{r:#}");
        assert!(r.get("NextAttemptDate").is_none(), "{r:#}");
    }

    let (_, plain_value, _) = get_stage(&c, "fn/plain", "AWSCURRENT").await;
    assert_eq!(
        plain_value.chars().count(),
        32,
        "GetRandomPassword's default length"
    );
    let (_, json_value, _) = get_stage(&c, "fn/json", "AWSCURRENT").await;
    let parsed: Value = serde_json::from_str(&json_value).expect("the rotated JSON secret is JSON");
    assert_eq!(parsed["username"], "app", "username kept: {parsed}");
    assert_eq!(parsed["host"], "db.internal", "other fields kept: {parsed}");
    let password = parsed["password"].as_str().expect("password is a string");
    assert_ne!(password, "initial-password");
    assert_eq!(password.chars().count(), 32, "{parsed}");
    assert!(
        !password.chars().any(|ch| "/@\"'\\".contains(ch)),
        "EXCLUDE_CHARACTERS default honoured: {password:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// 2. The credentials a command function gets are scoped to its secret and die with the step
// ---------------------------------------------------------------------------------------------------------

const SCOPE_PROBE: &str = r#"
import json, os, sys
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

out_dir = sys.argv[1]
text = sys.stdin.read()
event = json.loads(text if text.strip() else os.environ["KURA_ROTATION_EVENT"])
own = event["SecretId"]
other = os.environ["OTHER_SECRET"]
client = boto3.client("secretsmanager", config=Config(retries={"max_attempts": 1}))

def outcome(call):
    try:
        call()
        return "OK"
    except ClientError as e:
        return e.response["Error"]["Code"]

seen = {
    "Step": event["Step"],
    "AccessKeyId": os.environ["AWS_ACCESS_KEY_ID"],
    "SecretAccessKey": os.environ["AWS_SECRET_ACCESS_KEY"],
    "OwnDescribeSecret": outcome(lambda: client.describe_secret(SecretId=own)),
    "OwnGetSecretValue": outcome(lambda: client.get_secret_value(SecretId=own)),
    "OwnListSecretVersionIds": outcome(lambda: client.list_secret_version_ids(SecretId=own)),
    "GetRandomPassword": outcome(lambda: client.get_random_password()),
    "OtherGetSecretValue": outcome(lambda: client.get_secret_value(SecretId=other)),
    "OtherDescribeSecret": outcome(lambda: client.describe_secret(SecretId=other)),
    "OtherPutSecretValue": outcome(lambda: client.put_secret_value(SecretId=other, SecretString="stolen")),
    "ListSecrets": outcome(lambda: client.list_secrets()),
    "CreateSecret": outcome(lambda: client.create_secret(Name="fn/created-by-function", SecretString="x")),
    "OwnDeleteSecret": outcome(lambda: client.delete_secret(SecretId=own, RecoveryWindowInDays=7)),
}
tmp = os.path.join(out_dir, "seen.json.tmp")
with open(tmp, "w") as f:
    json.dump(seen, f)
os.replace(tmp, os.path.join(out_dir, "seen.json"))
print("scope probe done", file=sys.stderr)
sys.exit(1)
"#;

#[tokio::test]
async fn command_function_credentials_are_scoped_to_the_secret_and_expire_with_the_step() {
    let Some(python) = python_with_boto3() else {
        return;
    };
    let server = Server::start().await;
    let c = server.client().await;
    let dir = Fixture::new();
    let script = dir.file("probe.py");
    std::fs::write(&script, SCOPE_PROBE).unwrap();
    let (other_arn, _) = create_string(&c, "fn/other", "other-secret-value", &token(1)).await;
    let (arn, _) = create_string(&c, "fn/scoped", "scoped-secret-value", &token(1)).await;
    server
        .kura(
            "CreateRotationFunction",
            &json!({
                "Name": "scope-probe",
                "Type": "command",
                "Command": [python, script, dir.path()],
                "Environment": { "OTHER_SECRET": other_arn },
                "MaxAttempts": 1,
            })
            .to_string(),
        )
        .await
        .assert_ok();

    rotate(&c, "fn/scoped", &lambda_arn(&arn, "scope-probe"), &token(2)).await;
    let r = expect_state(&server, "fn/scoped", "Failed").await;
    assert_eq!(
        last_error(&r),
        "createSecret: scope-probe exited with status 1: scope probe done",
        "{r:#}"
    );

    let seen: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.file("seen.json")).expect("the probe wrote seen.json"),
    )
    .unwrap();
    assert_eq!(seen["Step"], "createSecret", "{seen:#}");
    for (call, expected) in [
        ("OwnDescribeSecret", "OK"),
        ("OwnGetSecretValue", "OK"),
        ("OwnListSecretVersionIds", "OK"),
        ("GetRandomPassword", "OK"),
        ("OtherGetSecretValue", "AccessDeniedException"),
        ("OtherDescribeSecret", "AccessDeniedException"),
        ("OtherPutSecretValue", "AccessDeniedException"),
        ("ListSecrets", "AccessDeniedException"),
        ("CreateSecret", "AccessDeniedException"),
        ("OwnDeleteSecret", "AccessDeniedException"),
    ] {
        assert_eq!(
            seen[call], expected,
            "{call} with the function's credentials: {seen:#}"
        );
    }
    // Nothing the probe tried to do elsewhere happened.
    assert_eq!(get_string(&c, "fn/other").await, "other-secret-value");
    assert_no_secret(&c, "fn/created-by-function").await;
    let d = ok(c.describe_secret().secret_id("fn/scoped").send().await);
    assert!(
        d.deleted_date().is_none(),
        "the function must not delete its secret"
    );

    // The step is over: its key no longer works at all.
    let akid = seen["AccessKeyId"].as_str().unwrap();
    let secret = seen["SecretAccessKey"].as_str().unwrap();
    assert_ne!(akid, server.credentials().access_key_id);
    let stale = server.client_with(akid, secret).await;
    assert_api_err(
        stale.get_random_password().send().await,
        "UnrecognizedClientException",
        None,
    );
    assert_api_err(
        stale.describe_secret().secret_id("fn/scoped").send().await,
        "UnrecognizedClientException",
        None,
    );
}

// ---------------------------------------------------------------------------------------------------------
// 2b. What a failing function prints about the secret is redacted everywhere it goes
// ---------------------------------------------------------------------------------------------------------

/// Prints a nested field of the secret and a base64 copy of another on its last stderr line
/// (which becomes the step's error), then fails.
const LEAKY_FUNCTION: &str = r#"
import base64, json, os, sys
import boto3

text = sys.stdin.read()
event = json.loads(text if text.strip() else os.environ["KURA_ROTATION_EVENT"])
client = boto3.client("secretsmanager")
value = json.loads(client.get_secret_value(SecretId=event["SecretId"])["SecretString"])
token = base64.b64encode(value["api_key"].encode()).decode()
print("ValueError: login with %s refused; token %s" % (value["db"]["password"], token), file=sys.stderr)
sys.exit(1)
"#;

#[tokio::test]
async fn values_a_failing_function_prints_never_reach_last_error_log_outbox_or_notifications() {
    let Some(python) = python_with_boto3() else {
        return;
    };
    let server = Server::start().await;
    let c = server.client().await;
    // Answering 500 keeps the event in the outbox, to be read there too.
    let receiver = Receiver::always(500).await;
    server
        .kura(
            "CreateNotificationTarget",
            &json!({ "Url": receiver.url, "Events": ["RotationFailed"] }).to_string(),
        )
        .await
        .assert_ok();
    let suffix = unique_suffix();
    let password = format!("Nested-Pa55-{}", &suffix[..16]);
    // 24 characters: its base64 has no padding, so none is left beside the mark.
    let api_key = format!("Api-Key-{}", &suffix[16..]);
    let encoded = base64(api_key.as_bytes());
    let value =
        json!({ "db": { "host": "db.internal", "password": password }, "api_key": api_key });
    let (arn, _) = create_string(&c, "fn/leaky", &value.to_string(), &token(1)).await;
    let dir = Fixture::new();
    let script = dir.file("leaky.py");
    std::fs::write(&script, LEAKY_FUNCTION).unwrap();
    server
        .kura(
            "CreateRotationFunction",
            &json!({ "Name": "leaky", "Type": "command", "Command": [python, script], "MaxAttempts": 1 })
                .to_string(),
        )
        .await
        .assert_ok();

    rotate(&c, "fn/leaky", &lambda_arn(&arn, "leaky"), &token(2)).await;
    let r = expect_state(&server, "fn/leaky", "Failed").await;
    assert_eq!(
        last_error(&r),
        "createSecret: leaky exited with status 1: ValueError: login with [redacted] refused; token [redacted]",
        "{r:#}"
    );
    let requests = receiver
        .wait_until("RotationFailed", |all| {
            all.iter().any(|r| r.body.contains("RotationFailed"))
        })
        .await;
    let outbox = sqlite(
        &server.data_dir.join("kura.db"),
        "SELECT body FROM notification_outbox",
    );
    assert!(outbox.contains("RotationFailed"), "{outbox}");
    let mut places: Vec<(String, String)> = vec![
        (
            "DescribeSecret".into(),
            describe_json(&server, "fn/leaky").await.to_string(),
        ),
        ("the server log".into(), server.log()),
        ("the outbox".into(), outbox),
    ];
    for request in &requests {
        places.push(("a notification".into(), request.body.clone()));
    }
    for (path, bytes) in read_all_files(&server.data_dir) {
        places.push((
            path.display().to_string(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    for (place, text) in &places {
        for (what, leaked) in [
            ("the nested password", &password),
            ("the base64 api_key", &encoded),
        ] {
            assert!(!text.contains(leaked.as_str()), "{what} is in {place}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// 2c. Each function acts as its own principal; its execution policy adds to its key's reach
// ---------------------------------------------------------------------------------------------------------

/// Records what the step's key may do beyond its own secret, then fails the step, printing
/// the admin secret's value if it got it.
const POLICY_PROBE: &str = r#"
import json, os, sys
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

out = sys.argv[1]
text = sys.stdin.read()
event = json.loads(text if text.strip() else os.environ["KURA_ROTATION_EVENT"])
client = boto3.client("secretsmanager", config=Config(retries={"max_attempts": 1}))

def outcome(call):
    try:
        return {"Code": "OK", "Value": call().get("SecretString")}
    except ClientError as e:
        return {"Code": e.response["Error"]["Code"], "Message": e.response["Error"]["Message"]}

seen = {
    "Admin": outcome(lambda: client.get_secret_value(SecretId=os.environ["ADMIN_SECRET"])),
    "AdminDescribe": outcome(lambda: client.describe_secret(SecretId=os.environ["ADMIN_SECRET"])),
    "Third": outcome(lambda: client.get_secret_value(SecretId=os.environ["THIRD_SECRET"])),
    "OwnDescribe": outcome(lambda: client.describe_secret(SecretId=event["SecretId"])),
}
with open(out + ".tmp", "w") as f:
    json.dump(seen, f)
os.replace(out + ".tmp", out)
admin = seen["Admin"].get("Value")
print("probe done" + ("; admin %s" % admin if admin else ""), file=sys.stderr)
sys.exit(1)
"#;

/// kura keeps only the end of what a function writes to stderr (its last line is the reason),
/// so 20 MB of noise before it neither fills kura's memory nor hides the reason.
#[tokio::test]
async fn a_function_that_floods_stderr_fails_with_its_last_line() {
    let server = Server::start_with(&["--test-clock"]).await;
    let c = server.client().await;
    let (arn, _) = create_string(
        &c,
        "fn/noisy",
        &format!("noisy value {}", unique_suffix()),
        &token(1),
    )
    .await;
    let script = "head -c 20000000 /dev/zero | tr '\\0' x >&2; echo >&2; \
                  echo 'the target refused the change' >&2; exit 3";
    server
        .kura(
            "CreateRotationFunction",
            &json!({ "Name": "noisy", "Type": "command", "Command": ["/bin/sh", "-c", script], "MaxAttempts": 1 })
                .to_string(),
        )
        .await
        .assert_ok();
    rotate(&c, "fn/noisy", &lambda_arn(&arn, "noisy"), &token(2)).await;
    let r = expect_state(&server, "fn/noisy", "Failed").await;
    assert_eq!(
        last_error(&r),
        "createSecret: noisy exited with status 3: the target refused the change",
        "{r:#}"
    );
}

#[tokio::test]
async fn a_function_acts_as_its_own_role_and_its_policy_adds_to_what_its_key_may_do() {
    let Some(python) = python_with_boto3() else {
        return;
    };
    let server = Server::start().await;
    let c = server.client().await;
    let (admin_arn, _) = create_string(&c, "fn/admin", "admin-secret-value", &token(1)).await;
    let (third_arn, _) = create_string(&c, "fn/third", "third-secret-value", &token(1)).await;
    let account = admin_arn.split(':').nth(4).unwrap().to_string();
    let dir = Fixture::new();
    let script = dir.file("policy-probe.py");
    std::fs::write(&script, POLICY_PROBE).unwrap();
    let allow_admin = json!({
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": admin_arn,
    });
    // The policy as an object, as a string, and with an explicit Deny that beats the key's
    // own allowance on its secret.
    let functions = [
        ("no-policy", None),
        (
            "with-policy",
            Some(json!({"Version": "2012-10-17", "Statement": [allow_admin.clone()]})),
        ),
        (
            "with-deny",
            Some(Value::String(
                json!({"Version": "2012-10-17", "Statement": [
                    allow_admin.clone(),
                    {"Effect": "Deny", "Action": "secretsmanager:DescribeSecret", "Resource": "*"},
                ]})
                .to_string(),
            )),
        ),
    ];
    for (name, policy) in &functions {
        let mut body = json!({
            "Name": name,
            "Type": "command",
            "Command": [python, script, dir.file(&format!("{name}.json"))],
            "Environment": { "ADMIN_SECRET": admin_arn, "THIRD_SECRET": third_arn },
            "MaxAttempts": 1,
        });
        if let Some(p) = policy {
            body["Policy"] = p.clone();
        }
        let created = server
            .kura("CreateRotationFunction", &body.to_string())
            .await
            .assert_ok();
        assert_eq!(
            created["PrincipalArn"],
            format!("arn:aws:iam::{account}:role/kura-rotation/{name}"),
            "{created:#}"
        );
        let id = format!("fn/app-{name}");
        let (arn, _) = create_string(&c, &id, "app-secret-value", &token(1)).await;
        rotate(&c, &id, &lambda_arn(&arn, name), &token(2)).await;
    }
    let mut seen = BTreeMap::new();
    for (name, policy) in &functions {
        let id = format!("fn/app-{name}");
        let r = expect_state(&server, &id, "Failed").await;
        // What a function read through its policy is redacted from its error like its own secret.
        let printed = if policy.is_some() {
            "; admin [redacted]"
        } else {
            ""
        };
        assert_eq!(
            last_error(&r),
            format!("createSecret: {name} exited with status 1: probe done{printed}"),
            "{r:#}"
        );
        let text = std::fs::read_to_string(dir.file(&format!("{name}.json")))
            .unwrap_or_else(|e| panic!("{name} did not record what it saw: {e}"));
        seen.insert(*name, serde_json::from_str::<Value>(&text).unwrap());
    }
    let code = |name: &str, call: &str| seen[name][call]["Code"].as_str().unwrap().to_string();

    // Without a policy: only its own secret, and the denial names the function's role.
    let role = format!("arn:aws:iam::{account}:role/kura-rotation/no-policy");
    assert_eq!(code("no-policy", "Admin"), "AccessDeniedException");
    let message = seen["no-policy"]["Admin"]["Message"].as_str().unwrap();
    assert!(message.contains(&role), "{message}");
    assert_eq!(code("no-policy", "OwnDescribe"), "OK");

    // With it: the admin secret's value, and nothing the policy does not name.
    assert_eq!(code("with-policy", "Admin"), "OK");
    assert_eq!(seen["with-policy"]["Admin"]["Value"], "admin-secret-value");
    assert_eq!(
        code("with-policy", "AdminDescribe"),
        "AccessDeniedException"
    );
    assert_eq!(code("with-policy", "Third"), "AccessDeniedException");
    assert_eq!(code("with-policy", "OwnDescribe"), "OK");

    // An explicit Deny in the policy wins over the key's own allowance.
    assert_eq!(code("with-deny", "Admin"), "OK");
    assert_eq!(code("with-deny", "OwnDescribe"), "AccessDeniedException");
    assert_eq!(code("with-deny", "Third"), "AccessDeniedException");

    // The audit trail records who read the admin secret: the function's role.
    let audit = std::fs::read_to_string(server.data_dir.join("audit.jsonl")).unwrap();
    let reads: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| {
            r["Kind"] == "request"
                && r["Action"] == "secretsmanager:GetSecretValue"
                && r["Resource"] == admin_arn.as_str()
        })
        .collect();
    let mut principals: Vec<(String, String)> = reads
        .iter()
        .map(|r| {
            (
                r["Principal"].as_str().unwrap_or("").to_string(),
                r["Outcome"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    principals.sort();
    let role_of = |n: &str| format!("arn:aws:iam::{account}:role/kura-rotation/{n}");
    assert_eq!(
        principals,
        [
            (role_of("no-policy"), "Error".to_string()),
            (role_of("with-deny"), "Success".to_string()),
            (role_of("with-policy"), "Success".to_string()),
        ],
        "{reads:#?}"
    );
    let steps: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["Kind"] == "rotation")
        .collect();
    assert!(
        steps
            .iter()
            .any(|r| r["Principal"] == role_of("with-policy").as_str()),
        "the rotation step's record names the role: {steps:#?}"
    );

    // The listing shows each function's principal and policy; built-ins have roles too.
    let listed = server.kura("ListRotationFunctions", "{}").await.assert_ok();
    let entry = |name: &str| {
        listed["RotationFunctions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["Name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed: {listed:#}"))
            .clone()
    };
    assert_eq!(
        entry("kura-password")["PrincipalArn"],
        role_of("kura-password")
    );
    assert_eq!(entry("no-policy")["PrincipalArn"], role_of("no-policy"));
    assert!(entry("no-policy").get("Policy").is_none(), "{listed:#}");
    let shown: Value =
        serde_json::from_str(entry("with-policy")["Policy"].as_str().expect("Policy")).unwrap();
    assert_eq!(shown, functions[1].1.clone().unwrap());
    // The roles are kura's, not users anyone can manage.
    let users = server.kura("ListUsers", "{}").await.assert_ok();
    assert!(!users.to_string().contains("kura-rotation"), "{users:#}");
}

#[tokio::test]
async fn a_rotation_function_policy_is_checked_like_a_user_policy() {
    let server = Server::start().await;
    let bad = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]});
    let as_function = server
        .kura(
            "CreateRotationFunction",
            &json!({"Name": "bad-policy", "Type": "command", "Command": ["/bin/true"], "Policy": bad})
                .to_string(),
        )
        .await
        .assert_error("MalformedPolicyDocumentException");
    server
        .kura("CreateUser", r#"{"UserName": "policy-check"}"#)
        .await
        .assert_ok();
    let as_user = server
        .kura(
            "PutUserPolicy",
            &json!({"UserName": "policy-check", "PolicyName": "p", "PolicyDocument": bad})
                .to_string(),
        )
        .await
        .assert_error("MalformedPolicyDocumentException");
    assert_eq!(
        as_function.strip_prefix("Policy: "),
        as_user.strip_prefix("PolicyDocument: "),
        "{as_function} / {as_user}"
    );
    let message = server
        .kura(
            "CreateRotationFunction",
            &json!({"Name": "num-policy", "Type": "command", "Command": ["/bin/true"], "Policy": 7})
                .to_string(),
        )
        .await
        .assert_error("MalformedPolicyDocumentException");
    assert_eq!(
        message,
        "Policy must be a policy: a JSON object, or that object as a string."
    );
    let message = server
        .kura(
            "CreateRotationFunction",
            &json!({"Name": "hook-policy", "Type": "webhook", "Url": "http://127.0.0.1:9/x", "Policy": {}})
                .to_string(),
        )
        .await
        .assert_error("InvalidParameterException");
    assert!(message.contains("Policy"), "{message}");
    let listed = server.kura("ListRotationFunctions", "{}").await.assert_ok();
    assert!(
        !listed.to_string().contains("policy"),
        "nothing was created: {listed:#}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// 3. A failing step is retried with backoff, then the cycle fails; the next cycle succeeds
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn failing_set_secret_is_retried_then_fails_and_the_next_cycle_succeeds() {
    let Some(python) = python_with_boto3() else {
        return;
    };
    let server = Server::start_with(&["--test-clock"]).await;
    let c = server.client().await;
    let (arn, v1) = create_string(&c, "fn/retry", "original-password", &token(1)).await;
    let fixture = python_function(&server, &python, "py-retry", 3).await;
    let function = lambda_arn(&arn, "py-retry");
    fixture.touch("fail-setSecret");

    rotate(&c, "fn/retry", &function, &token(2)).await;
    // Attempt 1 failed: waiting for attempt 2, 60 s later.
    let r = wait_rotation_settled(&server, "fn/retry", SETTLE).await;
    assert_eq!(r["State"], "InProgress", "{r:#}");
    assert_eq!(r["Step"], "setSecret", "{r:#}");
    assert_eq!(r["Attempt"], 2, "{r:#}");
    let error = last_error(&r);
    assert!(error.starts_with("setSecret: "), "{error:?}");
    assert!(error.contains("injected failure at setSecret"), "{error:?}");
    let wait = epoch(&r, "NextAttemptDate") - epoch(&r, "LastAttemptDate");
    assert!(
        (wait - 60.0).abs() < 1.0,
        "first backoff is 60 s, got {wait}: {r:#}"
    );

    // Nothing happens before the retry is due.
    advance_clock(&server, 59).await;
    let r = describe_json(&server, "fn/retry").await["KuraRotation"].clone();
    assert_eq!(r["Attempt"], 2, "the retry ran early: {r:#}");

    // Attempt 2 fails too: next one 120 s later.
    advance_clock(&server, 1).await;
    let r = describe_json(&server, "fn/retry").await["KuraRotation"].clone();
    assert_eq!(r["State"], "InProgress", "{r:#}");
    assert_eq!(r["Attempt"], 3, "{r:#}");
    assert!(
        last_error(&r).contains("injected failure at setSecret"),
        "{r:#}"
    );
    let wait = epoch(&r, "NextAttemptDate") - epoch(&r, "LastAttemptDate");
    assert!(
        (wait - 120.0).abs() < 1.0,
        "second backoff is 120 s, got {wait}: {r:#}"
    );

    // Attempt 3 (of 3) fails: the cycle is over.
    advance_clock(&server, 120).await;
    let r = describe_json(&server, "fn/retry").await["KuraRotation"].clone();
    assert_eq!(r["State"], "Failed", "{r:#}");
    assert_eq!(r["Attempt"], 3, "{r:#}");
    assert!(r.get("NextAttemptDate").is_none(), "{r:#}");
    assert!(r["LastAttemptDate"].is_number(), "{r:#}");
    let error = last_error(&r);
    assert!(
        error.starts_with("setSecret: py-retry exited with status 1")
            && error.contains("injected failure at setSecret"),
        "{error:?}"
    );
    let (current, value, _) = get_stage(&c, "fn/retry", "AWSCURRENT").await;
    assert_eq!(
        (current.as_str(), value.as_str()),
        (v1.as_str(), "original-password")
    );
    // createSecret of the failed cycle did stage a value; it never became current.
    let (pending, pending_value, labels) = get_stage(&c, "fn/retry", "AWSPENDING").await;
    assert_eq!(pending, token(2));
    assert_eq!(labels, vec!["AWSPENDING".to_string()]);
    assert_ne!(pending_value, "original-password");
    assert_eq!(fixture.log(), vec![("createSecret".to_string(), token(2))]);

    // The next cycle, with the failure gone, succeeds.
    fixture.remove("fail-setSecret");
    rotate(&c, "fn/retry", &function, &token(3)).await;
    let r = expect_state(&server, "fn/retry", "Succeeded").await;
    assert!(r.get("LastError").is_none(), "{r:#}");
    let (current, value, _) = get_stage(&c, "fn/retry", "AWSCURRENT").await;
    assert_eq!(current, token(3));
    assert_ne!(
        value, pending_value,
        "the new cycle generates its own value"
    );
    assert_eq!(fixture.target_fingerprint(), sha256_hex(&value));
    let (previous, previous_value, _) = get_stage(&c, "fn/retry", "AWSPREVIOUS").await;
    assert_eq!(
        (previous.as_str(), previous_value.as_str()),
        (v1.as_str(), "original-password")
    );
    let all = list_versions(&c, "fn/retry", true).await;
    assert_eq!(
        carrying(&all, "AWSPENDING"),
        vec![token(3)],
        "the failed cycle's version must not keep AWSPENDING: {all:?}"
    );
    if let Some(labels) = all.get(&token(2)) {
        assert!(labels.is_empty(), "stale version keeps labels: {all:?}");
    }
    let mut expected = vec![("createSecret".to_string(), token(2))];
    expected.extend(full_cycle(&token(3)));
    assert_eq!(fixture.log(), expected, "createSecret once per cycle");
}

#[tokio::test]
async fn failed_create_secret_leaves_a_value_less_placeholder_that_the_next_cycle_removes() {
    let Some(python) = python_with_boto3() else {
        return;
    };
    let server = Server::start().await;
    let c = server.client().await;
    let (arn, v1) = create_string(&c, "fn/placeholder", "original-password", &token(1)).await;
    let fixture = python_function(&server, &python, "py-placeholder", 1).await;
    let function = lambda_arn(&arn, "py-placeholder");
    fixture.touch("fail-createSecret");

    rotate(&c, "fn/placeholder", &function, &token(2)).await;
    let r = expect_state(&server, "fn/placeholder", "Failed").await;
    assert!(
        last_error(&r).starts_with(
            "createSecret: py-placeholder exited with status 1: injected failure at createSecret"
        ),
        "{r:#}"
    );
    assert_eq!(get_string(&c, "fn/placeholder").await, "original-password");
    // The failed cycle's AWSPENDING version has no value to read.
    let err = api_err(
        c.get_secret_value()
            .secret_id("fn/placeholder")
            .version_stage("AWSPENDING")
            .send()
            .await,
    );
    assert_eq!(err.code, "ResourceNotFoundException", "{err:?}");
    let stages = describe_stages(&c, "fn/placeholder").await;
    assert_eq!(
        carrying(&stages, "AWSPENDING"),
        vec![token(2)],
        "{stages:?}"
    );
    assert!(fixture.log().is_empty(), "{:?}", fixture.log());

    fixture.remove("fail-createSecret");
    rotate(&c, "fn/placeholder", &function, &token(3)).await;
    expect_state(&server, "fn/placeholder", "Succeeded").await;
    let all = list_versions(&c, "fn/placeholder", true).await;
    assert!(
        !all.contains_key(&token(2)),
        "the stale placeholder must be removed by the next cycle: {all:?}"
    );
    assert_eq!(
        all,
        stages_of(&[
            (&v1, &["AWSPREVIOUS"]),
            (&token(3), &["AWSCURRENT", "AWSPENDING"]),
        ])
    );
    assert_eq!(fixture.log(), full_cycle(&token(3)));
}

// ---------------------------------------------------------------------------------------------------------
// 4. The server is SIGKILLed during a step; the restarted server resumes and finishes
// ---------------------------------------------------------------------------------------------------------

async fn crash_during(step: &str) {
    let Some(python) = python_with_boto3() else {
        return;
    };
    let server = Server::start().await;
    let c = server.client().await;
    let (arn, v1) = create_string(&c, "fn/crash", "before-the-crash", &token(1)).await;
    let fixture = python_function(&server, &python, "py-crash", 1).await;
    let block = format!("block-{step}");
    fixture.touch(&block);

    rotate(&c, "fn/crash", &lambda_arn(&arn, "py-crash"), &token(2)).await;
    let at = fixture.file(&format!("at-{step}"));
    wait_for_file(&at, &server).await;
    let pid: u32 = std::fs::read_to_string(&at)
        .unwrap()
        .trim()
        .parse()
        .expect("at-<Step> holds a pid");
    let r = describe_json(&server, "fn/crash").await["KuraRotation"].clone();
    assert_eq!(
        (r["State"].as_str(), r["Step"].as_str()),
        (Some("InProgress"), Some(step)),
        "{r:#}"
    );

    let tmp = server.kill().await;
    // The blocked function notices that kura is gone and exits without doing the step.
    wait_process_gone(pid, "the blocked rotation function").await;
    fixture.remove(&block);

    let server = Server::start_in(tmp).await;
    let r = expect_state(&server, "fn/crash", "Succeeded").await;
    assert!(r.get("LastError").is_none(), "{r:#}");
    let c = server.client().await;
    let (current, value, _) = get_stage(&c, "fn/crash", "AWSCURRENT").await;
    assert_eq!(
        current,
        token(2),
        "AWSCURRENT must be on the token after the crash in {step}"
    );
    assert_ne!(value, "before-the-crash");
    let (previous, previous_value, _) = get_stage(&c, "fn/crash", "AWSPREVIOUS").await;
    assert_eq!(
        (previous.as_str(), previous_value.as_str()),
        (v1.as_str(), "before-the-crash")
    );
    assert_eq!(
        fixture.target_fingerprint(),
        sha256_hex(&value),
        "the target system must hold the new AWSCURRENT value"
    );
    let all = list_versions(&c, "fn/crash", true).await;
    assert_eq!(carrying(&all, "AWSPENDING"), vec![token(2)], "{all:?}");
    assert_eq!(
        fixture.log(),
        full_cycle(&token(2)),
        "each step ran to completion exactly once (the interrupted {step} is not logged)"
    );
}

#[tokio::test]
async fn sigkill_during_create_secret_resumes_after_restart() {
    crash_during("createSecret").await;
}

#[tokio::test]
async fn sigkill_during_set_secret_resumes_after_restart() {
    crash_during("setSecret").await;
}

#[tokio::test]
async fn sigkill_during_test_secret_resumes_after_restart() {
    crash_during("testSecret").await;
}

#[tokio::test]
async fn sigkill_during_finish_secret_resumes_after_restart() {
    crash_during("finishSecret").await;
}

// ---------------------------------------------------------------------------------------------------------
// 5. Webhook functions
// ---------------------------------------------------------------------------------------------------------

/// What the test's webhook does at each step, with root credentials: the same work as an AWS
/// rotation Lambda, with a deterministic new value.
async fn webhook_step(
    client: &Client,
    key: Option<&str>,
    request: &Received,
) -> Result<(), String> {
    let key = key.ok_or("the signing secret is not known yet")?;
    check_signature(key, request)?;
    lambda_step(client, request).await
}

#[tokio::test]
async fn webhook_function_rotates_a_secret_and_a_failing_webhook_fails_the_rotation() {
    let server = Server::start().await;
    let c = server.client().await;
    let (arn, v1) = create_string(&c, "fn/hooked", "before-webhook", &token(1)).await;

    let key: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let errors: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let receiver = {
        let (client, key, errors) = (c.clone(), key.clone(), errors.clone());
        Receiver::start(Arc::new(move |request: Received| -> Reply {
            let (client, key, errors) = (client.clone(), key.clone(), errors.clone());
            Box::pin(async move {
                match webhook_step(&client, key.get().map(String::as_str), &request).await {
                    Ok(()) => 200,
                    Err(e) => {
                        errors.lock().unwrap().push(e);
                        500
                    }
                }
            })
        }))
        .await
    };
    let created = server
        .kura(
            "CreateRotationFunction",
            &json!({
                "Name": "hook",
                "Type": "webhook",
                "Url": receiver.url,
                "TimeoutSeconds": 30,
                "MaxAttempts": 1,
            })
            .to_string(),
        )
        .await
        .assert_ok();
    assert_eq!(created["Name"], "hook", "{created:#}");
    assert_eq!(created["Type"], "webhook", "{created:#}");
    assert_eq!(created["ARN"], lambda_arn(&arn, "hook"), "{created:#}");
    assert_eq!(created["Url"], receiver.url.as_str(), "{created:#}");
    let generated = created["SigningSecret"]
        .as_str()
        .unwrap_or_else(|| {
            panic!("kura generated a signing secret but did not return it: {created:#}")
        })
        .to_string();
    assert!(generated.len() >= 16, "{generated:?}");
    key.set(generated.clone()).unwrap();

    rotate(&c, "fn/hooked", &lambda_arn(&arn, "hook"), &token(2)).await;
    let r = wait_rotation_settled(&server, "fn/hooked", SETTLE).await;
    assert_eq!(
        r["State"],
        "Succeeded",
        "{r:#}\nwebhook errors: {:?}\n--- server log ---\n{}",
        errors.lock().unwrap(),
        server.log()
    );
    assert!(
        errors.lock().unwrap().is_empty(),
        "{:?}",
        errors.lock().unwrap()
    );

    let requests = receiver.requests();
    let steps: Vec<String> = requests
        .iter()
        .map(|rq| rq.json()["Step"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(steps, STEPS, "each step posted once, in order");
    for request in &requests {
        let event = assert_signed(request, &generated, "rotation.step");
        assert_eq!(event["SecretId"], arn.as_str(), "{event}");
        assert_eq!(event["ClientRequestToken"], token(2), "{event}");
        assert!(
            event["RotationToken"]
                .as_str()
                .is_some_and(|t| !t.is_empty()),
            "{event}"
        );
    }
    let (current, value, _) = get_stage(&c, "fn/hooked", "AWSCURRENT").await;
    assert_eq!(current, token(2));
    assert_eq!(value, format!("webhook-password-{}", token(2)));
    let (previous, previous_value, _) = get_stage(&c, "fn/hooked", "AWSPREVIOUS").await;
    assert_eq!(
        (previous.as_str(), previous_value.as_str()),
        (v1.as_str(), "before-webhook")
    );

    // A webhook that answers 500: the step fails, and with MaxAttempts 1 the cycle fails.
    let broken = Receiver::always(500).await;
    let own_secret = "a-signing-secret-chosen-by-the-test";
    let created = server
        .kura(
            "CreateRotationFunction",
            &json!({
                "Name": "hook-500",
                "Type": "webhook",
                "Url": broken.url,
                "SigningSecret": own_secret,
                "MaxAttempts": 1,
            })
            .to_string(),
        )
        .await
        .assert_ok();
    assert!(
        created.get("SigningSecret").is_none(),
        "a signing secret the caller chose is not echoed: {created:#}"
    );
    let (arn2, v1b) = create_string(&c, "fn/hook-500", "stays-current", &token(1)).await;
    rotate(&c, "fn/hook-500", &lambda_arn(&arn2, "hook-500"), &token(2)).await;
    let r = expect_state(&server, "fn/hook-500", "Failed").await;
    let error = last_error(&r);
    assert!(error.starts_with("createSecret: "), "{error:?}");
    assert!(error.contains("HTTP 500"), "{error:?}");
    let requests = broken.requests();
    assert_eq!(requests.len(), 1, "MaxAttempts 1: one POST: {requests:#?}");
    let event = assert_signed(&requests[0], own_secret, "rotation.step");
    assert_eq!(event["Step"], "createSecret");
    assert_eq!(event["SecretId"], arn2.as_str());
    let (current, value, _) = get_stage(&c, "fn/hook-500", "AWSCURRENT").await;
    assert_eq!(
        (current.as_str(), value.as_str()),
        (v1b.as_str(), "stays-current")
    );
}

// ---------------------------------------------------------------------------------------------------------
// 6. Notifications
// ---------------------------------------------------------------------------------------------------------

fn has_event(events: &[Value], name: &str, version: &str) -> bool {
    events
        .iter()
        .any(|e| e["Event"] == name && e["VersionId"] == version)
}

#[tokio::test]
async fn notification_target_receives_signed_rotation_and_value_events() {
    let server = Server::start().await;
    let c = server.client().await;
    let receiver = Receiver::always(200).await;
    let subscribed = ["RotationStarted", "RotationSucceeded", "SecretValueChanged"];
    let created = server
        .kura(
            "CreateNotificationTarget",
            &json!({ "Url": receiver.url, "Events": subscribed }).to_string(),
        )
        .await
        .assert_ok();
    let target_id = created["TargetId"].as_str().expect("TargetId").to_string();
    assert_eq!(created["Url"], receiver.url.as_str(), "{created:#}");
    let mut events: Vec<&str> = created["Events"]
        .as_array()
        .expect("Events")
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    events.sort();
    assert_eq!(events, subscribed, "{created:#}");
    let signing_secret = created["SigningSecret"]
        .as_str()
        .unwrap_or_else(|| panic!("generated SigningSecret not returned: {created:#}"))
        .to_string();
    let listed = server.kura("ListNotificationTargets", "{}").await;
    let listed_json = listed.assert_ok();
    assert!(
        listed_json["NotificationTargets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["TargetId"] == target_id.as_str()),
        "{listed_json:#}"
    );
    assert!(
        !listed.body.contains(&signing_secret),
        "the list must not show the signing secret"
    );

    let (arn, _) = create_string(&c, "notify/db", "first-value", &token(1)).await;
    rotate(
        &c,
        "notify/db",
        &lambda_arn(&arn, "kura-password"),
        &token(2),
    )
    .await;
    expect_state(&server, "notify/db", "Succeeded").await;
    // Not subscribed: must not be sent.
    let (other_arn, _) = create_string(&c, "notify/other", "x-value", &token(1)).await;
    ok(c.delete_secret()
        .secret_id("notify/other")
        .recovery_window_in_days(7)
        .send()
        .await);
    put_string(&c, "notify/db", "put-by-hand", &token(3)).await;

    let requests = receiver
        .wait_until("SecretValueChanged for the PutSecretValue", |all| {
            let bodies: Vec<Value> = all
                .iter()
                .filter_map(|r| serde_json::from_str(&r.body).ok())
                .collect();
            has_event(&bodies, "SecretValueChanged", &token(3))
        })
        .await;
    let mut bodies = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for request in &requests {
        let body = assert_signed(request, &signing_secret, "notification");
        let event = body["Event"].as_str().expect("Event").to_string();
        assert!(
            subscribed.contains(&event.as_str()),
            "unsubscribed event sent: {body:#}"
        );
        assert!(
            ids.insert(body["EventId"].as_str().expect("EventId").to_string()),
            "EventId repeated: {requests:#?}"
        );
        let time = body["Time"].as_f64().expect("numeric Time");
        assert!(
            (time - now_secs() as f64).abs() < SIGNATURE_TOLERANCE_SECS as f64,
            "{body:#}"
        );
        if body["ARN"] == other_arn.as_str() {
            assert_eq!(body["Name"], "notify/other", "{body:#}");
        } else {
            assert_eq!(body["ARN"], arn.as_str(), "{body:#}");
            assert_eq!(body["Name"], "notify/db", "{body:#}");
        }
        bodies.push(body);
    }
    let position = |name: &str, version: &str| {
        bodies
            .iter()
            .position(|b| {
                b["Event"] == name && b["VersionId"] == version && b["ARN"] == arn.as_str()
            })
            .unwrap_or_else(|| panic!("no {name} for version {version}: {bodies:#?}"))
    };
    let started = position("RotationStarted", &token(2));
    let succeeded = position("RotationSucceeded", &token(2));
    assert!(
        started < succeeded,
        "RotationStarted after RotationSucceeded: {bodies:#?}"
    );
    position("SecretValueChanged", &token(3));
    assert!(
        bodies.iter().all(|b| b.get("Error").is_none()),
        "{bodies:#?}"
    );
}

#[tokio::test]
async fn notification_answered_500_is_delivered_again_after_the_backoff() {
    let server = Server::start_with(&["--test-clock"]).await;
    let c = server.client().await;
    let (arn, _) = create_string(&c, "notify/retry", "first-value", &token(1)).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let receiver = {
        let calls = calls.clone();
        Receiver::start(Arc::new(move |_| -> Reply {
            let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
            Box::pin(async move { if first { 500 } else { 200 } })
        }))
        .await
    };
    let own_secret = "notification-secret-chosen-by-the-test";
    let created = server
        .kura(
            "CreateNotificationTarget",
            &json!({ "Url": receiver.url, "Events": ["SecretValueChanged"], "SigningSecret": own_secret })
                .to_string(),
        )
        .await
        .assert_ok();
    assert!(created.get("SigningSecret").is_none(), "{created:#}");

    put_string(&c, "notify/retry", "second-value", &token(2)).await;
    let first = receiver
        .wait_until("the first delivery", |all| !all.is_empty())
        .await;
    assert_eq!(first.len(), 1, "{first:#?}");
    let body = assert_signed(&first[0], own_secret, "notification");
    assert_eq!(body["Event"], "SecretValueChanged");
    assert_eq!(body["ARN"], arn.as_str());
    assert_eq!(body["VersionId"], token(2));
    let t1 = check_signature(own_secret, &first[0]).unwrap();

    // Not due before 30 s.
    advance_clock(&server, 29).await;
    assert_eq!(
        receiver.requests().len(),
        1,
        "redelivered before the 30 s backoff"
    );
    // AdvanceClock delivers what became due before it answers.
    advance_clock(&server, 1).await;
    let all = receiver.requests();
    assert_eq!(all.len(), 2, "one redelivery after 30 s: {all:#?}");
    let again = assert_signed(&all[1], own_secret, "notification");
    assert_eq!(
        again, body,
        "the same event (same EventId) is delivered again"
    );
    let t2 = check_signature(own_secret, &all[1]).unwrap();
    assert!(
        t2 >= t1 + 30,
        "the retry is signed at the service time: {t1} then {t2}"
    );

    // Delivered: nothing more, however much later.
    advance_clock(&server, 3_600).await;
    assert_eq!(receiver.requests().len(), 2, "{:#?}", receiver.requests());
}

// ---------------------------------------------------------------------------------------------------------
// 7. Kura.CreateRotationFunction / ListRotationFunctions / DeleteRotationFunction
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn create_rotation_function_validates_its_input() {
    let server = Server::start().await;
    let c = server.client().await;
    let create = |body: Value| {
        let server = &server;
        async move {
            server
                .kura("CreateRotationFunction", &body.to_string())
                .await
        }
    };

    let cases = [
        (
            json!({"Name": "rel", "Type": "command", "Command": ["python3", "/opt/rotate.py"]}),
            "Command",
        ),
        (
            json!({"Name": "far", "Type": "webhook", "Url": "http://example.com/rotate"}),
            "Url",
        ),
        (
            json!({"Name": "odd", "Type": "lambda", "Command": ["/bin/true"]}),
            "Type",
        ),
        (
            json!({"Name": "kura-mine", "Type": "command", "Command": ["/bin/true"]}),
            "kura-",
        ),
        (
            json!({"Name": "badenv", "Type": "command", "Command": ["/bin/true"], "Environment": {"A=B": "x"}}),
            "Environment",
        ),
        (
            json!({"Name": "zero", "Type": "command", "Command": ["/bin/true"], "MaxAttempts": 0}),
            "MaxAttempts",
        ),
    ];
    for (body, field) in cases {
        let message = create(body.clone())
            .await
            .assert_error("InvalidParameterException");
        assert!(
            message.contains(field),
            "the message for {body} must name {field}: {message:?}"
        );
    }

    let good = json!({
        "Name": "rotate-db",
        "Type": "command",
        "Command": ["/bin/true", "--flag"],
        "Environment": {"DB_PASSWORD": "env-value-must-stay-hidden", "DB_HOST": "env-host-hidden-too"},
        "TimeoutSeconds": 30,
        "MaxAttempts": 2,
    });
    let created = create(good.clone()).await;
    let created_json = created.assert_ok();
    assert_eq!(created_json["Name"], "rotate-db", "{created_json:#}");
    assert_eq!(created_json["Type"], "command", "{created_json:#}");
    assert!(
        !created.body.contains("env-value-must-stay-hidden"),
        "{}",
        created.body
    );
    let message = create(good).await.assert_error("ResourceExistsException");
    assert!(message.contains("rotate-db"), "{message:?}");
    create(json!({"Name": "local-hook", "Type": "webhook", "Url": "http://127.0.0.1:9/x"}))
        .await
        .assert_ok();

    let listed = server.kura("ListRotationFunctions", "{}").await;
    let list = listed.assert_ok();
    assert!(
        !listed.body.contains("env-value-must-stay-hidden"),
        "{}",
        listed.body
    );
    assert!(
        !listed.body.contains("env-host-hidden-too"),
        "{}",
        listed.body
    );
    let functions = list["RotationFunctions"]
        .as_array()
        .expect("RotationFunctions");
    let find = |name: &str| {
        functions
            .iter()
            .find(|f| f["Name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed: {list:#}"))
    };
    assert_eq!(find("kura-password")["BuiltIn"], true);
    let mine = find("rotate-db");
    assert_eq!(mine["BuiltIn"], false, "{mine:#}");
    assert_eq!(mine["Command"], json!(["/bin/true", "--flag"]), "{mine:#}");
    let mut keys: Vec<&str> = mine["EnvironmentKeys"]
        .as_array()
        .unwrap_or_else(|| panic!("no EnvironmentKeys: {mine:#}"))
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    keys.sort();
    assert_eq!(keys, ["DB_HOST", "DB_PASSWORD"], "{mine:#}");
    assert!(mine.get("Environment").is_none(), "{mine:#}");
    assert_eq!(
        (
            mine["TimeoutSeconds"].as_i64(),
            mine["MaxAttempts"].as_i64()
        ),
        (Some(30), Some(2))
    );
    for name in ["rel", "far", "odd", "kura-mine", "badenv", "zero"] {
        assert!(
            functions.iter().all(|f| f["Name"] != name),
            "rejected {name} was stored: {list:#}"
        );
    }

    // In use by a secret: not deletable.
    let arn = create_plain(&c, "fn/uses", "v").await;
    ok(c.rotate_secret()
        .secret_id("fn/uses")
        .rotation_lambda_arn(lambda_arn(&arn, "rotate-db"))
        .rotate_immediately(false)
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .send()
        .await);
    let message = server
        .kura("DeleteRotationFunction", r#"{"Name": "rotate-db"}"#)
        .await
        .assert_error("InvalidRequestException");
    assert!(
        message.contains("rotate-db") || message.contains("fn/uses"),
        "{message:?}"
    );
    server
        .kura("DeleteRotationFunction", r#"{"Name": "kura-password"}"#)
        .await
        .assert_error("InvalidRequestException");
    server
        .kura("DeleteRotationFunction", r#"{"Name": "no-such-function"}"#)
        .await
        .assert_error("ResourceNotFoundException");
    server
        .kura("DeleteRotationFunction", r#"{"Name": "local-hook"}"#)
        .await
        .assert_ok();
    let list = server.kura("ListRotationFunctions", "{}").await.assert_ok();
    let names: Vec<&str> = list["RotationFunctions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["Name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"rotate-db") && !names.contains(&"local-hook"),
        "{names:?}"
    );
}
