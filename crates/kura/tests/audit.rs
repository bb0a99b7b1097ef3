//! The audit trail: one record per request, chained so that edits, deletions and reorderings
//! are found by `kura audit verify`, and fail-closed.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

async fn events(server: &Server, filter: Value) -> Vec<Value> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = filter.clone();
        body["MaxResults"] = 1000.into();
        if let Some(t) = &token {
            body["NextToken"] = t.clone().into();
        }
        let page = server
            .kura("LookupAuditEvents", &body.to_string())
            .await
            .assert_ok();
        out.extend(page["Events"].as_array().cloned().unwrap_or_default());
        match page["NextToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => return out,
        }
    }
}

fn verify(data_dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kura"))
        .args(["audit", "verify", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run kura audit verify");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok, "cp -a {} {}", from.display(), to.display());
}

#[tokio::test]
async fn every_request_leaves_exactly_one_record() {
    let server = Server::start().await;
    let c = server.client().await;
    // 1-3: successes; 4: a client error; 5: unauthenticated; 6: a denied call.
    let arn = create_plain(&c, "audit/one", "value-one").await;
    get_string(&c, "audit/one").await;
    put_string(&c, "audit/one", "value-two", &token(2)).await;
    assert_api_err(
        c.get_secret_value().secret_id("audit/none").send().await,
        "ResourceNotFoundException",
        None,
    );
    server
        .raw("ListSecrets", "{}", SignMode::Unsigned)
        .await
        .assert_error("MissingAuthenticationTokenException");
    server
        .kura("CreateUser", r#"{"UserName": "dave"}"#)
        .await
        .assert_ok(); // 6
    let key = server
        .kura("CreateAccessKey", r#"{"UserName": "dave"}"#)
        .await
        .assert_ok(); // 7
    let dave = server
        .client_with(
            key["AccessKey"]["AccessKeyId"].as_str().unwrap(),
            key["AccessKey"]["SecretAccessKey"].as_str().unwrap(),
        )
        .await;
    assert_api_err(
        dave.get_secret_value().secret_id("audit/one").send().await,
        "AccessDeniedException",
        None,
    ); // 8

    let all = events(&server, json!({})).await;
    let requests: Vec<&Value> = all.iter().filter(|e| e["Kind"] == "request").collect();
    assert_eq!(requests.len(), 8, "one record per request: {all:#?}");
    let actions: Vec<&str> = requests
        .iter()
        .filter_map(|e| e["Action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "secretsmanager:CreateSecret",
            "secretsmanager:GetSecretValue",
            "secretsmanager:PutSecretValue",
            "secretsmanager:GetSecretValue",
            "secretsmanager:ListSecrets",
            "kura:CreateUser",
            "kura:CreateAccessKey",
            "secretsmanager:GetSecretValue",
        ]
    );
    let get = requests[1];
    assert_eq!(get["Resource"], arn.as_str());
    assert_eq!(
        (get["Decision"].as_str(), get["Outcome"].as_str()),
        (Some("Allow"), Some("Success"))
    );
    assert!(get["Principal"].as_str().unwrap().ends_with(":root"));
    assert_eq!(get["SourceIp"], "127.0.0.1");
    assert!(get["RequestId"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(requests[3]["ErrorCode"], "ResourceNotFoundException");
    assert_eq!(
        (
            requests[4]["Principal"].as_str(),
            requests[4]["Decision"].as_str()
        ),
        (Some("-"), Some("-"))
    );
    let denied = requests[7];
    assert_eq!(
        (denied["Decision"].as_str(), denied["ErrorCode"].as_str()),
        (Some("Deny"), Some("AccessDeniedException"))
    );
    assert!(
        denied["Principal"]
            .as_str()
            .unwrap()
            .ends_with(":user/dave")
    );

    // Filters and paging.
    let errors = events(&server, json!({"Outcome": "Error"})).await;
    assert!(errors.iter().all(|e| e["Outcome"] == "Error") && errors.len() >= 3);
    let page = server
        .kura("LookupAuditEvents", r#"{"MaxResults": 2}"#)
        .await
        .assert_ok();
    assert_eq!(page["Events"].as_array().map(Vec::len), Some(2));
    let next = page["NextToken"].as_str().unwrap();
    server
        .kura(
            "LookupAuditEvents",
            &json!({"MaxResults": 2, "Action": "kura:CreateUser", "NextToken": next}).to_string(),
        )
        .await
        .assert_error("InvalidNextTokenException");

    // Nothing of a value reaches the audit trail or the log.
    let trail = std::fs::read_to_string(server.data_dir.join("audit.jsonl")).unwrap();
    for secret in [
        "value-one",
        "value-two",
        key["AccessKey"]["SecretAccessKey"].as_str().unwrap(),
    ] {
        assert!(
            !trail.contains(secret) && !server.log().contains(secret),
            "{secret} leaked"
        );
        assert!(!all.iter().any(|e| e.to_string().contains(secret)));
    }
    let (ok_, out) = verify(&server.data_dir);
    assert!(ok_, "{out}");
}

/// Lookups by secret come through the lookup file beside the database once its filler has
/// passed, from the trail before that, and after a restart; the file, like the database's
/// own, is readable by its owner only.
#[tokio::test]
async fn lookups_by_secret_span_the_lookup_file_and_a_restart() {
    use std::os::unix::fs::PermissionsExt;
    let server = Server::start().await;
    let c = server.client().await;
    let arn = create_plain(&c, "audit/looked-up", "value-looked-up").await;
    // The filler's first pass follows the first commit; the records after it are read
    // from the trail until the next pass, seconds later, or after the restart.
    for _ in 0..3 {
        get_string(&c, "audit/looked-up").await;
    }
    let actions = |records: Vec<Value>| -> Vec<String> {
        records
            .iter()
            .map(|e| e["Action"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let expected = [
        "secretsmanager:CreateSecret",
        "secretsmanager:GetSecretValue",
        "secretsmanager:GetSecretValue",
        "secretsmanager:GetSecretValue",
    ];
    assert_eq!(
        actions(events(&server, json!({"Resource": arn})).await),
        expected
    );
    let tmp = server.stop().await;
    let server = Server::start_in(tmp).await;
    assert_eq!(
        actions(events(&server, json!({"Resource": arn})).await),
        expected
    );
    let mut files = Vec::new();
    for e in std::fs::read_dir(&server.data_dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("kura.db") {
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name} is {mode:o}");
            files.push(name);
        }
    }
    assert!(files.iter().any(|f| f == "kura.db-lookup"), "{files:?}");
}

#[tokio::test]
async fn rotation_steps_are_audited() {
    let server = Server::start().await;
    let c = server.client().await;
    let arn = create_plain(&c, "audit/rot", "rotated-from-value").await;
    let body =
        json!({"SecretId": "audit/rot", "RotationLambdaARN": lambda_arn(&arn, "kura-password")});
    server
        .raw("RotateSecret", &body.to_string(), SignMode::Root)
        .await
        .assert_ok();
    wait_rotation_succeeded(&server, "audit/rot").await;
    let steps: Vec<String> = events(&server, json!({"Resource": arn}))
        .await
        .into_iter()
        .filter(|e| e["Kind"] == "rotation")
        .filter_map(|e| e["Action"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        steps,
        [
            "rotation:createSecret",
            "rotation:setSecret",
            "rotation:testSecret",
            "rotation:finishSecret"
        ]
    );
}

#[tokio::test]
async fn kura_audit_verify_finds_edits_deletions_and_reorderings() {
    if !have("sqlite3") {
        return;
    }
    let server = Server::start().await;
    let c = server.client().await;
    create_plain(&c, "audit/t", "audit-t-value-1").await;
    for i in 0..10 {
        get_string(&c, "audit/t").await;
        if i == 4 {
            put_string(&c, "audit/t", "audit-t-value-2", &token(4)).await;
        }
    }
    let (ok_, out) = verify(&server.data_dir);
    assert!(ok_ && out.contains("intact"), "{out}");
    let tmp = tempfile::tempdir().unwrap();
    let scenario = |name: &str, sql: &str| {
        let dir = tmp.path().join(name);
        copy_dir(&server.data_dir, &dir);
        if !sql.is_empty() {
            sqlite(&dir.join("kura.db"), sql);
        }
        verify(&dir)
    };
    let (ok_, out) = scenario(
        "edited",
        "UPDATE audit_log SET principal = 'arn:aws:iam::0:user/nobody' WHERE seq = 5",
    );
    assert!(
        !ok_ && out.contains("record 5") && out.contains("edited"),
        "{out}"
    );
    let (ok_, out) = scenario("deleted", "DELETE FROM audit_log WHERE seq = 7");
    assert!(
        !ok_ && out.contains("7") && out.contains("missing"),
        "{out}"
    );
    let (ok_, out) = scenario(
        "reordered",
        "UPDATE audit_log SET seq = -3 WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = 4; UPDATE audit_log SET seq = 4 WHERE seq = -3",
    );
    assert!(!ok_ && out.contains("record 3"), "{out}");
    let (ok_, out) = scenario("truncated", "DELETE FROM audit_log WHERE seq > 9");
    assert!(!ok_ && out.contains("database ends at record 9"), "{out}");
    // The control: the copy itself verifies, so the failures above come from the edits.
    let (ok_, out) = scenario("untouched", "");
    assert!(ok_, "{out}");
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Rewrites records `from..` of an audit trail the way a forger who guessed `key` would:
/// record `from` gets `principal`, and it and every later record get a MAC recomputed with
/// `key` over exactly the bytes kura signs (the previous MAC, a newline, the record's JSON
/// line with an empty `Mac`). Returns the new lines and the SQL that makes the database
/// match them.
fn forge(lines: &[String], from: usize, principal: &str, key: &[u8]) -> (Vec<String>, String) {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mac_of_line = |line: &str| -> String {
        let r: Value = serde_json::from_str(line).unwrap();
        r["Mac"].as_str().unwrap().to_string()
    };
    let mut out = lines.to_vec();
    let mut prev = if from == 0 {
        "kura-audit-v1".to_string()
    } else {
        mac_of_line(&out[from - 1])
    };
    let mut sql = String::new();
    for (i, line) in out.iter_mut().enumerate().skip(from) {
        let r: Value = serde_json::from_str(line).unwrap();
        let seq = r["Seq"].as_i64().unwrap();
        if i == from {
            let old = r["Principal"].as_str().unwrap();
            // Textual edits keep the field order, which the MAC covers.
            *line = line.replacen(
                &format!("\"Principal\":\"{old}\""),
                &format!("\"Principal\":\"{principal}\""),
                1,
            );
            sql.push_str(&format!(
                "UPDATE audit_log SET principal = '{principal}' WHERE seq = {seq};"
            ));
        }
        let signed_field = format!("\"Mac\":\"{}\"", mac_of_line(line));
        let unsigned = line.replacen(&signed_field, "\"Mac\":\"\"", 1);
        assert_ne!(&unsigned, line, "no Mac field in {line}");
        let mut data = prev.into_bytes();
        data.push(b'\n');
        data.extend(unsigned.as_bytes());
        let mac = hex_lower(hmac::sign(&key, &data).as_ref());
        *line = unsigned.replacen("\"Mac\":\"\"", &format!("\"Mac\":\"{mac}\""), 1);
        sql.push_str(&format!(
            "UPDATE audit_log SET mac = '{mac}' WHERE seq = {seq};"
        ));
        prev = mac;
    }
    (out, sql)
}

#[tokio::test]
async fn a_forger_who_recomputes_the_chain_with_a_guessed_key_is_caught() {
    if !have("sqlite3") {
        return;
    }
    let (server_tmp, n) = stopped_server_with_records().await;
    let data = server_tmp.path().join("data");
    let lines: Vec<String> = std::fs::read_to_string(data.join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let mallory = "arn:aws:iam::000000000000:user/mallory";
    // Keys a forger would try first: all zeros (a key never filled from the RNG), empty,
    // and the key's own public context label.
    let guesses: [(&str, &[u8]); 3] = [
        ("zeros", &[0u8; 32]),
        ("empty", b""),
        ("label", b"kura/audit-key"),
    ];
    for (name, key) in guesses {
        // Record 5 rewritten, and the chain after it repaired, in both the file and the
        // database, so they agree with each other and only the key can tell.
        let (forged, sql) = forge(&lines, 4, mallory, key);
        assert_eq!(forged.len(), n);
        let dir = tmp.path().join(name);
        copy_dir(&data, &dir);
        std::fs::write(dir.join("audit.jsonl"), joined(&forged)).unwrap();
        sqlite(&dir.join("kura.db"), &sql);
        let principal = sqlite(
            &dir.join("kura.db"),
            "SELECT principal FROM audit_log WHERE seq = 5",
        );
        assert_eq!(
            principal.trim(),
            mallory,
            "the forgery did not reach the database"
        );
        let (ok_, out) = verify(&dir);
        assert!(
            !ok_,
            "{name}: a chain re-signed with a guessed key verified: {out}"
        );
        assert!(
            out.contains("record 5 does not match its MAC")
                && out.contains("line 5 ")
                && out.contains("does not verify under this server's audit key"),
            "{name}: {out}"
        );
    }
}

#[tokio::test]
async fn a_request_whose_record_cannot_be_written_fails_and_returns_no_secret() {
    if !have("sqlite3") {
        return;
    }
    let server = Server::start().await;
    let c = server.client().await;
    create_plain(&c, "audit/closed", "must-not-be-returned").await;
    sqlite(
        &server.data_dir.join("kura.db"),
        "CREATE TRIGGER no_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit disabled'); END;",
    );
    let r = server
        .raw(
            "GetSecretValue",
            r#"{"SecretId": "audit/closed"}"#,
            SignMode::Root,
        )
        .await;
    assert_eq!(r.status, 500, "{r:?}");
    assert!(
        r.body.contains("InternalServiceError") && r.body.contains("audit"),
        "{r:?}"
    );
    assert!(!r.body.contains("must-not-be-returned"));
    sqlite(&server.data_dir.join("kura.db"), "DROP TRIGGER no_audit");
    assert_eq!(get_string(&c, "audit/closed").await, "must-not-be-returned");
    let (ok_, out) = verify(&server.data_dir);
    assert!(ok_, "the chain continues after the failure: {out}");
}

/// A client that goes away while its request's record is being written: the record is
/// written anyway (fail closed means no answer without it, not no record), and the request
/// still gets its one log line, saying it was abandoned, so log and trail agree.
#[tokio::test]
async fn a_request_abandoned_while_its_record_is_written_is_logged_and_audited() {
    if !have("sqlite3") {
        return;
    }
    let server = Server::start().await;
    let c = server.client().await;
    let value = format!("abandoned-{}", unique_suffix());
    create_plain(&c, "audit/abandoned", &value).await;
    // Today's first read marks the version read today (a write); the next one writes nothing
    // but its record.
    assert_eq!(get_string(&c, "audit/abandoned").await, value);

    // Another writer holds the database's write lock, so the audit writer waits for it.
    let mut holder = Command::new("sqlite3")
        .args(["-cmd", ".timeout 10000"])
        .arg(server.data_dir.join("kura.db"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run sqlite3");
    let mut stdin = holder.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"BEGIN IMMEDIATE;\nSELECT 'locked';\n").unwrap();
    let mut stdout = std::io::BufReader::new(holder.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line.trim(), "locked");

    // The client gives up after 500 ms and closes its connection.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(500),
        server.raw(
            "GetSecretValue",
            r#"{"SecretId": "audit/abandoned"}"#,
            SignMode::Root,
        ),
    )
    .await;
    assert!(
        gave_up.is_err(),
        "answered while the audit writer could not write"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::io::Write::write_all(&mut stdin, b"COMMIT;\n").unwrap();
    drop(stdin);
    assert!(holder.wait().unwrap().success());

    let abandoned = || {
        server
            .log()
            .lines()
            .filter(|l| l.contains("outcome=\"abandoned\"") && l.contains("GetSecretValue"))
            .filter_map(|l| l.split("request_id=\"").nth(1)?.split('"').next())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (mut file, mut ids) = (Vec::new(), abandoned());
    while std::time::Instant::now() < deadline {
        ids = abandoned();
        file = server.audited_request_ids().0;
        if ids.len() == 1 && file.contains(&ids[0]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ids.len(),
        1,
        "one abandoned request logged: {}",
        server.log()
    );
    assert!(
        file.contains(&ids[0]),
        "its record {} is in audit.jsonl",
        ids[0]
    );
    server.assert_one_audit_record_per_request();
}

#[tokio::test]
async fn the_leak_check_itself_catches_a_value_in_the_log() {
    let server = Server::start().await;
    let value = "planted-value-5b1e9d";
    remember_value(value);
    server.assert_no_stored_value_leaked();
    std::fs::OpenOptions::new()
        .append(true)
        .open(server.log_path())
        .and_then(|mut f| std::io::Write::write_all(&mut f, value.as_bytes()))
        .unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        server.assert_no_stored_value_leaked()
    }));
    assert!(caught.is_err(), "a planted value must be reported");
    forget_value(value);
}

#[tokio::test]
async fn requests_outside_the_api_are_audited_too() {
    let server = Server::start().await;
    let http = reqwest::Client::new();
    for (method, path) in [("GET", "/admin"), ("GET", "/"), ("DELETE", "/x")] {
        let url = format!("{}{path}", server.endpoint());
        let resp = http
            .request(method.parse().unwrap(), &url)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{method} {path}");
    }
    let probes: Vec<(String, String)> = events(&server, json!({}))
        .await
        .into_iter()
        .filter(|e| e["Action"].as_str().is_some_and(|a| a.starts_with("http:")))
        .map(|e| {
            (
                e["Action"].as_str().unwrap().to_string(),
                e["Resource"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("http:GET", "/admin"),
        ("http:GET", "/"),
        ("http:DELETE", "/x"),
    ]
    .iter()
    .map(|(a, r)| (a.to_string(), r.to_string()))
    .collect();
    assert_eq!(probes, expected);
}

/// A stopped server's data directory with a few records in its trail, and how many.
async fn stopped_server_with_records() -> (tempfile::TempDir, usize) {
    let server = Server::start().await;
    let c = server.client().await;
    create_plain(&c, "audit/file", "file-value").await;
    for i in 0..8 {
        get_string(&c, "audit/file").await;
        if i == 3 {
            put_string(&c, "audit/file", "file-value-2", &token(3)).await;
        }
    }
    let tmp = server.stop().await;
    let lines = std::fs::read_to_string(tmp.path().join("data/audit.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert!(lines >= 10, "{lines} records");
    (tmp, lines)
}

/// Copies `data` to a new directory under `tmp`, lets `change` rewrite its audit file's
/// lines (`None`: delete the file), and runs `kura audit verify` on the copy.
fn verify_with_file(
    tmp: &Path,
    data: &Path,
    name: &str,
    change: impl FnOnce(Vec<String>) -> Option<String>,
) -> (bool, String) {
    let dir = tmp.join(name);
    copy_dir(data, &dir);
    let file = dir.join("audit.jsonl");
    let lines = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    match change(lines) {
        Some(text) => std::fs::write(&file, text).unwrap(),
        None => std::fs::remove_file(&file).unwrap(),
    }
    verify(&dir)
}

fn joined(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[tokio::test]
async fn kura_audit_verify_checks_the_audit_file_line_by_line() {
    let (server_tmp, n) = stopped_server_with_records().await;
    let data = server_tmp.path().join("data");
    let tmp = tempfile::tempdir().unwrap();
    let check = |name: &str, change: &dyn Fn(Vec<String>) -> Option<String>, expect: &[&str]| {
        let (ok_, out) = verify_with_file(tmp.path(), &data, name, change);
        assert!(!ok_, "{name}: tampering not found: {out}");
        for e in expect {
            assert!(out.contains(e), "{name}: {e:?} not in: {out}");
        }
    };
    check(
        "edited",
        &|mut l| {
            let mut r: Value = serde_json::from_str(&l[4]).unwrap();
            r["Principal"] = "arn:aws:iam::000000000000:user/mallory".into();
            l[4] = r.to_string();
            Some(joined(&l))
        },
        &["line 5 ", "record 5", "Principal", "edited"],
    );
    check(
        "line-deleted",
        &|mut l| {
            l.remove(6);
            Some(joined(&l))
        },
        &["line 7 ", "is record 8", "deleted"],
    );
    check(
        "lines-swapped",
        &|mut l| {
            l.swap(2, 3);
            Some(joined(&l))
        },
        &["line 3 ", "is record 4", "reordered"],
    );
    check(
        "cut-mid-line",
        &|l| {
            let text = joined(&l);
            let last = l.last().unwrap().len();
            Some(text[..text.len() - last / 2].to_string())
        },
        &[&format!("line {n} "), "not an audit record"],
    );
    check(
        "last-lines-cut",
        &|l| Some(joined(&l[..n - 2])),
        &[
            &format!("ends after line {} (record {})", n - 2, n - 2),
            &format!("goes on to record {}", n - 1),
            "truncated",
        ],
    );
    check(
        "emptied",
        &|_| Some(String::new()),
        &["is empty", "emptied"],
    );
    check("deleted", &|_| None, &["is missing", "deleted"]);

    // Another server's trail: same shape, other key.
    let (other_tmp, _) = stopped_server_with_records().await;
    let other = std::fs::read_to_string(other_tmp.path().join("data/audit.jsonl")).unwrap();
    check(
        "another-servers-file",
        &|_| Some(other.clone()),
        &["line 1 ", "does not verify under this server's audit key"],
    );

    let (ok_, out) = verify_with_file(tmp.path(), &data, "untouched", |l| Some(joined(&l)));
    assert!(
        ok_ && out.contains(&format!("intact: {n} records")),
        "{out}"
    );
}

/// Runs `kura server` on `data_dir`; its stderr if it exits (with failure) within 30 s,
/// `None` if it kept running (it is killed then).
async fn start_refused(data_dir: &Path) -> Option<String> {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kura"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn kura server");
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait()).await;
    let Ok(status) = status else {
        let _ = child.kill().await;
        return None;
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        tokio::io::AsyncReadExt::read_to_string(&mut e, &mut err)
            .await
            .unwrap();
    }
    assert!(!status.unwrap().success(), "{err}");
    Some(err)
}

#[tokio::test]
async fn a_deleted_audit_key_is_reported_and_the_server_refuses_to_start() {
    if !have("sqlite3") {
        return;
    }
    let (tmp, n) = stopped_server_with_records().await;
    let data = tmp.path().join("data");
    sqlite(
        &data.join("kura.db"),
        "DELETE FROM settings WHERE key = 'audit_key'",
    );
    let (ok_, out) = verify(&data);
    assert!(
        !ok_ && out.contains("audit key")
            && out.contains("missing")
            && out.contains(&format!("{n} audit records")),
        "{out}"
    );
    let err = start_refused(&data)
        .await
        .expect("the server started without its audit key");
    assert!(
        err.contains("audit key") && err.contains("missing") && err.contains("restore"),
        "{err}"
    );
    assert!(!err.contains("internal error"), "the reason: {err}");
    // No new key was created behind the operator's back.
    assert_eq!(
        sqlite(
            &data.join("kura.db"),
            "SELECT COUNT(*) FROM settings WHERE key = 'audit_key'"
        ),
        "0"
    );

    // The records gone with the key are still seen in the file.
    sqlite(&data.join("kura.db"), "DELETE FROM audit_log");
    let (ok_, out) = verify(&data);
    assert!(
        !ok_ && out.contains("audit.jsonl holds audit records"),
        "{out}"
    );
    assert!(start_refused(&data).await.is_some());
}

#[tokio::test]
async fn a_change_whose_audit_record_cannot_be_written_is_not_made() {
    if !have("sqlite3") {
        return;
    }
    let server = Server::start().await;
    let c = server.client().await;
    create_plain(&c, "audit/atomic", "value-before").await;
    let tmp = server.stop().await;
    let db = tmp.path().join("data/kura.db");
    // The change's own tables still take writes; only its audit record is refused.
    sqlite(
        &db,
        "CREATE TRIGGER no_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit disabled'); END;",
    );
    let server = Server::start_in(tmp).await;
    for (op, body) in [
        (
            "PutSecretValue",
            json!({"SecretId": "audit/atomic", "SecretString": "value-after-put", "ClientRequestToken": token(7)}),
        ),
        (
            "CreateSecret",
            json!({"Name": "audit/atomic-new", "SecretString": "value-of-new"}),
        ),
        (
            "TagResource",
            json!({"SecretId": "audit/atomic", "Tags": [{"Key": "k", "Value": "v"}]}),
        ),
        (
            "UpdateSecret",
            json!({"SecretId": "audit/atomic", "Description": "changed"}),
        ),
    ] {
        let r = server.raw(op, &body.to_string(), SignMode::Root).await;
        assert_eq!(r.status, 500, "{op}: {r:?}");
        assert!(r.body.contains("audit"), "{op}: {r:?}");
    }
    let r = server.kura("CreateUser", r#"{"UserName": "erin"}"#).await;
    assert!(r.status == 500 && r.body.contains("audit"), "{r:?}");
    let tmp = server.stop().await;
    sqlite(&db, "DROP TRIGGER no_audit");
    let server = Server::start_in(tmp).await;
    let c = server.client().await;
    assert_eq!(get_string(&c, "audit/atomic").await, "value-before");
    assert_eq!(list_versions(&c, "audit/atomic", true).await.len(), 1);
    assert!(describe_tags(&c, "audit/atomic").await.is_empty());
    assert_eq!(
        describe_json(&server, "audit/atomic").await["Description"],
        Value::Null
    );
    assert_no_secret(&c, "audit/atomic-new").await;
    let users = server.kura("ListUsers", "{}").await.assert_ok();
    assert!(!users.to_string().contains("erin"), "{users}");
    let (ok_, out) = verify(&server.data_dir);
    assert!(ok_, "{out}");
}

#[tokio::test]
async fn the_chain_holds_under_concurrent_writes_and_reads() {
    let server = Server::start().await;
    let c = server.client().await;
    for i in 0..4 {
        create_plain(&c, &format!("audit/conc-{i}"), "conc-value-0").await;
    }
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25u64 {
                let id = format!("audit/conc-{}", (t + i) % 4);
                match i % 5 {
                    0 => {
                        put_string(&c, &id, "conc-value-1", &token(1000 + t * 100 + i)).await;
                    }
                    1 => {
                        ok(c.tag_resource()
                            .secret_id(&id)
                            .tags(tag(&format!("t{t}"), &i.to_string()))
                            .send()
                            .await);
                    }
                    2 => {
                        ok(c.describe_secret().secret_id(&id).send().await);
                    }
                    3 => {
                        assert_api_err(
                            c.get_secret_value()
                                .secret_id("audit/conc-none")
                                .send()
                                .await,
                            "ResourceNotFoundException",
                            None,
                        );
                    }
                    _ => {
                        get_string(&c, &id).await;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = events(&server, json!({})).await;
    let seqs: Vec<i64> = all.iter().filter_map(|e| e["Seq"].as_i64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert!(all.len() >= 204, "{}", all.len());
    let (ok_, out) = verify(&server.data_dir);
    assert!(ok_, "{out}");
}

/// Every record names the node that wrote it (the data directory's `node-id`), so the records
/// of several nodes on one database can be told apart; the name survives a restart.
#[tokio::test]
async fn records_name_the_node_that_wrote_them() {
    let server = Server::start().await;
    let node_file = server.data_dir.join("node-id");
    let node = std::fs::read_to_string(&node_file)
        .expect("the server names itself in DATA_DIR/node-id")
        .trim()
        .to_string();
    assert!(node.starts_with("node-") && node.len() > 8, "{node:?}");
    server.kura("ListUsers", "{}").await.assert_ok();
    let server = server.restart().await;
    server.kura("ListUsers", "{}").await.assert_ok();
    let records = events(&server, json!({})).await;
    assert!(records.len() >= 2, "{records:?}");
    for r in &records {
        assert_eq!(r["Node"], node.as_str(), "{r}");
    }
    let again = std::fs::read_to_string(&node_file).expect("node-id kept");
    assert_eq!(again.trim(), node);
    let (ok, out) = verify(&server.data_dir);
    assert!(ok, "{out}");
}

/// A request that fails authentication is recorded with the key it claimed and the secret it
/// asked for, so an operator sees who probed what.
#[tokio::test]
async fn an_unauthenticated_request_is_recorded_with_the_secret_it_asked_for() {
    let server = Server::start().await;
    server
        .raw_as(
            "AKIAPROBEPROBEPROBE1",
            "not-the-secret-key",
            "secretsmanager.GetSecretValue",
            r#"{"SecretId": "team-b/probed"}"#,
        )
        .await
        .assert_error("UnrecognizedClientException");
    let records = events(&server, json!({"Resource": "team-b/probed"})).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r["Principal"], "-", "{r}");
    assert_eq!(r["AccessKeyId"], "AKIAPROBEPROBEPROBE1", "{r}");
    assert_eq!(r["Action"], "secretsmanager:GetSecretValue", "{r}");
    assert_eq!(r["ErrorCode"], "UnrecognizedClientException", "{r}");
}
