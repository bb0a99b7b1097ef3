//! The web console at /console/, driven in a real headless Chromium through chromedriver
//! (Debian's `chromium` and `chromium-driver`, installed by scripts/test): sign-in and its
//! failures, the secrets list, a secret's page, reveal, create, new value, rotate now, delete
//! and restore, the audit trail, a user whose policy refuses an action, CSRF, session expiry.
//! Each test saves a screenshot of the page it ends on under target/console-shots/NAME.png.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::json;
use thirtyfour::prelude::*;
use tokio::process::{Child, Command};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One browser at a time: each is a Chromium, and the machine has two cores.
static BROWSERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A headless Chromium on a console, and the chromedriver driving it.
struct Console {
    browser: WebDriver,
    base: String,
    name: &'static str,
    _driver: Driver,
    /// Removed once the browser using it is gone (fields drop in order).
    _profile: tempfile::TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// Kills chromedriver and its Chromium when the test ends, however it ends: the driver runs
/// in a process group of its own, which the browser's processes join, and the whole group is
/// killed (killing the driver alone leaves Chromium running, adopted by init).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(pid) = self.0.id() {
            // SAFETY: kill(2) on our own child's process group; no memory is involved.
            unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
        }
        let _ = self.0.start_kill();
    }
}

fn shots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("console-shots")
}

/// A browser on `server`'s console, or `None` (the test skipped) when Chromium is absent.
async fn open(server: &Server, name: &'static str) -> Option<Console> {
    if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(CHROMEDRIVER).exists() {
        skip("chromium and chromium-driver are not installed (scripts/test installs them)");
        return None;
    }
    let turn = BROWSERS.lock().await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        l.local_addr().unwrap().port()
    };
    let driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromedriver");
    let driver = Driver(driver);
    let url = format!("http://127.0.0.1:{port}");
    let http = http_client();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while http.get(format!("{url}/status")).send().await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "chromedriver did not answer on {url} within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let profile = tempfile::tempdir().expect("a browser profile directory");
    let mut caps = DesiredCapabilities::chrome();
    caps.set_binary(CHROMIUM).unwrap();
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,860",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        &format!("--user-data-dir={}", profile.path().display()),
    ] {
        caps.add_arg(arg).unwrap();
    }
    let browser = WebDriver::new(url.as_str(), caps)
        .await
        .expect("a Chromium session through chromedriver");
    Some(Console {
        browser,
        base: server.endpoint(),
        name,
        _driver: driver,
        _profile: profile,
        _turn: turn,
    })
}

impl Console {
    async fn go(&self, path: &str) {
        self.go_on(&self.base, path).await;
    }

    /// Opens `path` on the server at `base` (another node of a cluster).
    async fn go_on(&self, base: &str, path: &str) {
        self.browser
            .goto(&format!("{base}{path}"))
            .await
            .unwrap_or_else(|e| panic!("open {base}{path}: {e}"));
    }

    async fn find(&self, css: &str) -> WebElement {
        match self.browser.find(By::Css(css)).await {
            Ok(e) => e,
            Err(e) => panic!("no element {css} on {}: {e}", self.path().await),
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear a field");
        field.send_keys(text).await.expect("type into a field");
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("click");
    }

    /// Clicks `target` and waits for the page it loads: until the old page's root element is
    /// gone and the new one has loaded (a form may post back to its own URL).
    async fn submitting(&self, target: WebElement) {
        let old = self.find("html").await;
        target.click().await.expect("click");
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while old.tag_name().await.is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "no new page 15 s after the click, on {}",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        while self
            .browser
            .execute("return document.readyState", vec![])
            .await
            .ok()
            .and_then(|v| v.json().as_str().map(str::to_string))
            .as_deref()
            != Some("complete")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the page did not load"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the button whose text is `label`.
    async fn press(&self, label: &str) {
        let xpath =
            format!("//button[normalize-space(.)='{label}'] | //a[normalize-space(.)='{label}']");
        let button = match self.browser.find(By::XPath(&xpath)).await {
            Ok(b) => b,
            Err(e) => panic!("no button {label:?} on {}: {e}", self.path().await),
        };
        self.submitting(button).await;
    }

    async fn text(&self) -> String {
        self.find("body")
            .await
            .text()
            .await
            .expect("the page's text")
    }

    async fn path(&self) -> String {
        self.browser
            .current_url()
            .await
            .map(|u| match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_string(),
            })
            .unwrap_or_default()
    }

    async fn assert_text(&self, expected: &str) {
        let text = self.text().await;
        assert!(
            text.contains(expected),
            "the page {} should say {expected:?}; it says:\n{text}",
            self.path().await
        );
    }

    async fn sign_in(&self, akid: &str, secret: &str) {
        self.go("/console/").await;
        self.fill("#access_key_id", akid).await;
        self.fill("#secret_access_key", secret).await;
        self.press("Sign in").await;
    }

    async fn sign_in_root(&self, server: &Server) {
        let creds = server.credentials();
        self.sign_in(&creds.access_key_id, &creds.secret_access_key)
            .await;
        assert_eq!(
            self.path().await,
            "/console/secrets",
            "{}",
            self.text().await
        );
    }

    /// The session cookie, as the browser holds it.
    async fn session_cookie(&self) -> String {
        let cookies = self.browser.get_all_cookies().await.expect("cookies");
        let c = cookies
            .iter()
            .find(|c| c.name == "kura_console")
            .expect("a kura_console cookie");
        assert_eq!(c.http_only, Some(true), "the session cookie is HttpOnly");
        format!("kura_console={}", c.value)
    }

    /// Saves the page as target/console-shots/NAME.png and ends the session.
    async fn finish(self) {
        let png = self
            .browser
            .screenshot_as_png()
            .await
            .expect("a screenshot");
        let dir = shots_dir();
        std::fs::create_dir_all(&dir).expect("create target/console-shots");
        std::fs::write(dir.join(format!("{}.png", self.name)), png).expect("save the screenshot");
        let _ = self.browser.quit().await;
    }
}

async fn audit(server: &Server, filter: serde_json::Value) -> Vec<serde_json::Value> {
    let r = server
        .kura("LookupAuditEvents", &filter.to_string())
        .await
        .assert_ok();
    r["Events"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_wrong_secret_key_is_refused_audited_and_throttled() {
    let server = Server::start().await;
    let Some(c) = open(&server, "sign-in-failure").await else {
        return;
    };
    let creds = server.credentials();
    c.sign_in(&creds.access_key_id, "not-the-secret-key").await;
    c.assert_text("UnrecognizedClientException").await;
    c.assert_text("The access key id or the secret key is wrong")
        .await;
    assert_eq!(c.path().await, "/console/sign-in");
    let failed = audit(&server, json!({"Action": "console:SignIn"})).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["Outcome"], "Error");
    assert_eq!(failed[0]["AccessKeyId"], creds.access_key_id.as_str());
    // Five failures from one address, then even the right key is refused for a while.
    for _ in 0..4 {
        c.sign_in(&creds.access_key_id, "still-wrong").await;
    }
    c.sign_in(&creds.access_key_id, &creds.secret_access_key)
        .await;
    c.assert_text("Too many failed sign-ins").await;
    assert_eq!(
        audit(&server, json!({"Action": "console:SignIn"}))
            .await
            .len(),
        6
    );
    c.finish().await;
}

#[tokio::test]
async fn the_console_pages_carry_a_strict_policy_and_the_cookie_is_strict() {
    let server = Server::start().await;
    let creds = server.credentials();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http
        .get(format!("{}/console/sign-in", server.endpoint()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.headers()["cache-control"], "no-store");
    let body = page.text().await.unwrap();
    assert!(!body.contains("<script"), "the console runs no script");
    let signed_in = http
        .post(format!("{}/console/sign-in", server.endpoint()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "access_key_id={}&secret_access_key={}",
            creds.access_key_id,
            url_encode(&creds.secret_access_key)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/console/secrets");
    // A sign-in form posted from another site is refused (login CSRF).
    let forged = http
        .post(format!("{}/console/sign-in", server.endpoint()))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "https://attacker.example")
        .body(format!(
            "access_key_id={}&secret_access_key={}",
            creds.access_key_id,
            url_encode(&creds.secret_access_key)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged.headers().get("set-cookie").is_none());
    assert!(
        forged
            .text()
            .await
            .unwrap()
            .contains("sent from another site")
    );
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    // Plain HTTP (loopback): Secure would make the browser drop it.
    assert!(!cookie.contains("Secure"), "{cookie}");
    // The sign-in is in the audit trail as root asking who it is.
    let who = audit(&server, json!({"Action": "kura:GetCallerIdentity"})).await;
    assert_eq!(who.len(), 1, "{who:?}");
    // Without a session, pages send you to sign in.
    let anonymous = http
        .get(format!("{}/console/secrets", server.endpoint()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 303);
    assert_eq!(anonymous.headers()["location"], "/console/sign-in");
    // A message planted in the flash cookie (by a sibling domain, say) is not shown: it is
    // signed with the session's own token.
    let session = cookie.split(';').next().unwrap();
    let planted = http
        .get(format!("{}/console/secrets", server.endpoint()))
        .header(
            "cookie",
            format!("{session}; kura_flash=MVBsYW50ZWQgYnkgYW5vdGhlciBzaXRl.AAAA"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(planted.status(), 200);
    assert!(!planted.text().await.unwrap().contains("Planted"));
}

/// Sessions are kept in the database: in a cluster a browser signed in on one node is signed
/// in on every node (a load balancer may send each request anywhere), and signing out on any
/// node ends the session on all of them at once.
#[tokio::test]
async fn a_cluster_shares_console_sessions() {
    let cluster = common::postgres::Cluster::start(&[&[], &[]]).await;
    let (a, b) = (&cluster.nodes[0], &cluster.nodes[1]);
    let Some(c) = open(a, "cluster-session").await else {
        return;
    };
    c.sign_in_root(a).await;
    let session = c.session_cookie().await;
    c.go_on(&b.endpoint(), "/console/audit").await;
    assert_eq!(c.path().await, "/console/audit", "{}", c.text().await);
    c.assert_text("kura:GetCallerIdentity").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page_on_a = |cookie: String| {
        http.get(format!("{}/console/secrets", a.endpoint()))
            .header("cookie", cookie)
            .send()
    };
    assert_eq!(page_on_a(session.clone()).await.unwrap().status(), 200);
    c.press("Sign out").await;
    c.assert_text("You signed out").await;
    // The browser dropped its cookie; the session itself is gone on node A too.
    let ended = page_on_a(session).await.unwrap();
    assert_eq!(ended.status(), 303);
    assert_eq!(ended.headers()["location"], "/console/sign-in?ended=1");
    c.finish().await;
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn the_list_searches_sorts_pages_and_shows_rotation_and_deletion() {
    let server = Server::start().await;
    let client = server.client().await;
    let described = [
        ("prod/api", "API signing key"),
        ("prod/billing", "Billing database login"),
        ("prod/search", "Search cluster token"),
        ("dev/api", "Old development key"),
    ];
    for (name, description) in described {
        create_plain(&client, name, "list-test-value-1").await;
        client
            .update_secret()
            .secret_id(name)
            .description(description)
            .send()
            .await
            .expect("describe a secret");
    }
    remember_value("list-test-value-1");
    client
        .rotate_secret()
        .secret_id("prod/billing")
        .rotation_lambda_arn("kura-password")
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .schedule_expression("rate(30 days)")
                .build(),
        )
        .rotate_immediately(false)
        .send()
        .await
        .expect("turn on rotation");
    client
        .delete_secret()
        .secret_id("dev/api")
        .recovery_window_in_days(7)
        .send()
        .await
        .expect("schedule a deletion");
    let Some(c) = open(&server, "secrets-list").await else {
        return;
    };
    c.sign_in_root(&server).await;
    c.assert_text("prod/api").await;
    assert!(
        !c.text().await.contains("dev/api"),
        "pending deletion is hidden by default"
    );
    // Rotation state and the next date.
    let row = c.find("tbody tr:nth-child(2)").await.text().await.unwrap();
    assert!(
        row.contains("prod/billing") && row.contains("On") && row.contains("rate(30 days)"),
        "{row}"
    );
    assert!(row.contains(" UTC"), "the next rotation date: {row}");
    // Search, with the deleted included: the deletion date shows.
    c.fill("#q", "dev/").await;
    c.click("#deleted").await;
    c.press("Search").await;
    let rows = c.find("tbody").await.text().await.unwrap();
    assert!(
        rows.contains("dev/api") && rows.contains("Deletion"),
        "{rows}"
    );
    assert!(!c.text().await.contains("prod/api"), "{}", c.text().await);
    // Paging: two a page, in descending name order.
    c.go("/console/secrets?sort=name&order=desc&size=2").await;
    let names = c.find("tbody").await.text().await.unwrap();
    assert!(
        names.find("prod/search") < names.find("prod/billing"),
        "{names}"
    );
    assert!(!names.contains("prod/api"), "{names}");
    c.press("Next page").await;
    c.assert_text("prod/api").await;
    assert!(!c.text().await.contains("prod/search"));
    c.go("/console/secrets?deleted=on").await;
    c.finish().await;
}

#[tokio::test]
async fn create_reveal_and_store_a_new_value() {
    let server = Server::start().await;
    let Some(c) = open(&server, "secret-page").await else {
        return;
    };
    c.sign_in_root(&server).await;
    c.press("Create secret").await;
    c.fill("#name", "prod/app/db").await;
    c.fill("#description", "The app's database login").await;
    let keys = c
        .browser
        .find_all(By::Css("input[name=key]"))
        .await
        .unwrap();
    let values = c
        .browser
        .find_all(By::Css("input[name=value]"))
        .await
        .unwrap();
    keys[0].send_keys("username").await.unwrap();
    values[0].send_keys("app").await.unwrap();
    keys[1].send_keys("password").await.unwrap();
    values[1]
        .send_keys("console-created-pw-7731")
        .await
        .unwrap();
    remember_value("console-created-pw-7731");
    c.press("Create secret").await;
    assert_eq!(
        c.path().await,
        "/console/secret?id=prod%2Fapp%2Fdb",
        "{}",
        c.text().await
    );
    c.assert_text("Created the secret prod/app/db").await;
    c.assert_text("AWSCURRENT").await;
    assert!(
        !c.text().await.contains("console-created-pw-7731"),
        "hidden until revealed"
    );
    let client = server.client().await;
    let stored: serde_json::Value =
        serde_json::from_str(&get_string(&client, "prod/app/db").await).unwrap();
    assert_eq!(
        stored,
        json!({"username": "app", "password": "console-created-pw-7731"})
    );

    c.press("Reveal value").await;
    c.assert_text("console-created-pw-7731").await;
    // A POST answered the value: it is not in the URL.
    assert!(!c.path().await.contains("pw-7731"));
    let reads = audit(&server, json!({"Action": "secretsmanager:GetSecretValue"})).await;
    assert!(
        reads
            .iter()
            .any(|r| r["Principal"].as_str().unwrap().ends_with(":root")
                && r["UserAgent"].as_str().unwrap_or("").contains("Chrome")),
        "the reveal is audited as root's GetSecretValue from the browser: {reads:?}"
    );

    c.go("/console/secret?id=prod/app/db").await;
    c.click("#new-value summary").await;
    c.fill("#plaintext", "console-second-value-5521").await;
    remember_value("console-second-value-5521");
    c.press("Store value").await;
    c.assert_text("Stored a new value").await;
    c.assert_text("AWSPREVIOUS").await;
    assert_eq!(
        get_string(&client, "prod/app/db").await,
        "console-second-value-5521"
    );
    c.finish().await;
}

#[tokio::test]
async fn rotate_now_makes_a_new_current_version() {
    let server = Server::start().await;
    let client = server.client().await;
    create_plain(&client, "prod/rotating", "before-rotation-9043").await;
    remember_value("before-rotation-9043");
    client
        .rotate_secret()
        .secret_id("prod/rotating")
        .rotation_lambda_arn("kura-password")
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .rotate_immediately(false)
        .send()
        .await
        .expect("turn on rotation");
    let Some(c) = open(&server, "rotate-now").await else {
        return;
    };
    c.sign_in_root(&server).await;
    c.go("/console/secret?id=prod/rotating").await;
    c.assert_text("every 30 days").await;
    c.press("Rotate now").await;
    c.assert_text("Rotation started").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = get_string(&client, "prod/rotating").await;
        if v != "before-rotation-9043" {
            remember_value(&v);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rotation did not finish in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.go("/console/secret?id=prod/rotating").await;
    c.assert_text("AWSPREVIOUS").await;
    c.assert_text("Succeeded").await;
    c.finish().await;
}

/// A user allowed to read secrets' metadata and `actions`, signed in with a key of their own.
async fn limited_user(server: &Server, name: &str, actions: &[&str]) -> (String, String) {
    server
        .kura("CreateUser", &json!({"UserName": name}).to_string())
        .await
        .assert_ok();
    let mut allowed = vec![
        "secretsmanager:ListSecrets",
        "secretsmanager:DescribeSecret",
        "secretsmanager:ListSecretVersionIds",
    ];
    allowed.extend_from_slice(actions);
    let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": allowed, "Resource": "*"}]});
    server
        .kura(
            "PutUserPolicy",
            &json!({"UserName": name, "PolicyName": "limited", "PolicyDocument": doc}).to_string(),
        )
        .await
        .assert_ok();
    let (akid, secret) = server.new_access_key(name).await;
    remember_value(&secret);
    (akid, secret)
}

/// Waits until the secret's AWSCURRENT value is `expected`.
async fn wait_for_value(client: &aws_sdk_secretsmanager::Client, id: &str, expected: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = get_string(client, id).await;
        if v == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} still holds another value than {expected:?} after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn rotate_now_with_a_custom_value() {
    let server = Server::start().await;
    let client = server.client().await;
    create_plain(&client, "custom/app", "before-custom-4471").await;
    create_plain(&client, "custom/manual", "manual-value-4471").await;
    remember_value("before-custom-4471");
    remember_value("manual-value-4471");
    client
        .rotate_secret()
        .secret_id("custom/app")
        .rotation_lambda_arn("kura-password")
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .rotate_immediately(false)
        .send()
        .await
        .expect("turn on rotation");
    let (akid, secret) = limited_user(&server, "rotator", &["secretsmanager:RotateSecret"]).await;
    let Some(c) = open(&server, "rotate-custom").await else {
        return;
    };
    c.sign_in_root(&server).await;
    c.go("/console/secret?id=custom/app").await;
    // Chosen but empty: nothing happens, and the page says what to do.
    c.click("#source-custom").await;
    c.press("Rotate now").await;
    c.assert_text("The custom value is empty").await;
    assert_eq!(
        get_string(&client, "custom/app").await,
        "before-custom-4471"
    );

    c.click("#source-custom").await;
    c.fill("#custom", "my-own-value-4471").await;
    remember_value("my-own-value-4471");
    c.press("Rotate now").await;
    c.assert_text("Rotation started with your value").await;
    wait_for_value(&client, "custom/app", "my-own-value-4471").await;
    let (_, previous, _) = get_stage(&client, "custom/app", "AWSPREVIOUS").await;
    assert_eq!(previous, "before-custom-4471");
    // Staged under a version of its own, which the rotation made current (AWS's way).
    let reads = audit(&server, json!({"Action": "secretsmanager:PutSecretValue"})).await;
    assert_eq!(reads.len(), 1, "{reads:?}");

    // Without a function nothing would rotate the value in: the page says so, and a post
    // naming such a secret stores nothing.
    c.go("/console/secret?id=custom/manual").await;
    c.assert_text("No rotation function is set, so nothing can rotate a value in")
        .await;
    c.go("/console/secret?id=custom/app").await;
    c.browser
        .execute(
            "document.querySelector('#rotate-now input[name=id]').value = 'custom/manual'",
            vec![],
        )
        .await
        .unwrap();
    c.click("#source-custom").await;
    c.fill("#custom", "never-stored-4471").await;
    remember_value("never-stored-4471");
    c.press("Rotate now").await;
    c.assert_text("InvalidRequestException").await;
    c.assert_text("this secret has no rotation function").await;
    assert_eq!(
        list_versions(&client, "custom/manual", true).await.len(),
        1,
        "nothing was staged"
    );

    // A user who may rotate but not store a value is refused with the API's message.
    c.press("Sign out").await;
    c.sign_in(&akid, &secret).await;
    c.go("/console/secret?id=custom/app").await;
    c.click("#source-custom").await;
    c.fill("#custom", "denied-value-4471").await;
    remember_value("denied-value-4471");
    c.press("Rotate now").await;
    c.assert_text("AccessDeniedException").await;
    c.assert_text("secretsmanager:PutSecretValue").await;
    assert_eq!(get_string(&client, "custom/app").await, "my-own-value-4471");
    c.press("Sign out").await;
    c.sign_in_root(&server).await;
    c.go("/console/secret?id=custom/app").await;
    c.finish().await;
}

#[tokio::test]
async fn create_with_tags_and_from_a_file() {
    let server = Server::start().await;
    let client = server.client().await;
    let files = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = files.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    };
    let config = r#"{"user": "app", "password": "file-pw-8812"}"#;
    remember_value("file-pw-8812");
    let config_json = write("config.json", config.as_bytes());
    let big = write("big.txt", &vec![b'a'; 70_000]);
    let broken = write("broken.json", b"{\"user\": ");
    let binary = write("key.bin", &[0xff, 0xfe, 0x00, 0x81]);
    let (akid, secret) = limited_user(&server, "reader", &[]).await;
    let Some(c) = open(&server, "create-file-tags").await else {
        return;
    };
    c.sign_in_root(&server).await;
    let tag = |i: usize, key: &'static str, value: &'static str| {
        let c = &c;
        async move {
            let keys = c
                .browser
                .find_all(By::Css("input[name=tag_key]"))
                .await
                .unwrap();
            let values = c
                .browser
                .find_all(By::Css("input[name=tag_value]"))
                .await
                .unwrap();
            keys[i].send_keys(key).await.unwrap();
            values[i].send_keys(value).await.unwrap();
        }
    };

    // Refused files: too large, not UTF-8, JSON that does not parse; the tags stay filled in.
    for (file, why) in [
        (
            &big,
            "big.txt is 70000 bytes; a secret value may be at most 65536 bytes",
        ),
        (&binary, "key.bin is not UTF-8 text"),
        (&broken, "broken.json is not valid JSON (line 1, column"),
    ] {
        c.go("/console/secrets/new").await;
        c.fill("#name", "files/refused").await;
        tag(0, "team", "payments").await;
        c.find("#file")
            .await
            .send_keys(file.as_str())
            .await
            .unwrap();
        c.press("Create secret").await;
        c.assert_text(why).await;
        let kept = c.find("input[name=tag_value]").await.value().await.unwrap();
        assert_eq!(kept.as_deref(), Some("payments"));
    }
    // A file and plain text at once: which one was meant?
    c.go("/console/secrets/new").await;
    c.fill("#name", "files/refused").await;
    c.fill("#plaintext", "typed-value").await;
    c.find("#file")
        .await
        .send_keys(config_json.as_str())
        .await
        .unwrap();
    c.press("Create secret").await;
    c.assert_text("Give the value one way").await;
    assert_no_secret(&client, "files/refused").await;

    c.go("/console/secrets/new").await;
    c.fill("#name", "files/config").await;
    c.fill("#description", "Uploaded from config.json").await;
    tag(0, "team", "payments").await;
    tag(1, "env", "prod").await;
    c.find("#file")
        .await
        .send_keys(config_json.as_str())
        .await
        .unwrap();
    c.press("Create secret").await;
    c.assert_text("Created the secret files/config").await;
    assert_eq!(get_string(&client, "files/config").await, config);
    let tags = describe_tags(&client, "files/config").await;
    assert_eq!(tags.get("team").map(String::as_str), Some("payments"));
    assert_eq!(tags.get("env").map(String::as_str), Some("prod"));
    // Tagged as it was created: one CreateSecret, no TagResource.
    assert!(
        audit(&server, json!({"Action": "secretsmanager:TagResource"}))
            .await
            .is_empty()
    );

    // Someone who may not create secrets gets the API's refusal.
    c.press("Sign out").await;
    c.sign_in(&akid, &secret).await;
    c.go("/console/secrets/new").await;
    c.fill("#name", "files/denied").await;
    c.fill("#plaintext", "denied-value-8812").await;
    remember_value("denied-value-8812");
    c.press("Create secret").await;
    c.assert_text("AccessDeniedException").await;
    c.assert_text("secretsmanager:CreateSecret").await;
    assert_no_secret(&client, "files/denied").await;
    c.press("Sign out").await;
    c.sign_in_root(&server).await;
    c.go("/console/secret?id=files/config").await;
    c.finish().await;
}

/// The stored value of `id`, as JSON.
async fn json_value(client: &aws_sdk_secretsmanager::Client, id: &str) -> serde_json::Value {
    serde_json::from_str(&get_string(client, id).await).expect("a JSON value")
}

#[tokio::test]
async fn the_database_wizard_creates_a_login_with_rotation() {
    let server = Server::start().await;
    let client = server.client().await;
    let admin = r#"{"engine": "postgres", "host": "127.0.0.1", "port": 5432, "username": "kura_admin", "password": "admin-pw-3302"}"#;
    remember_value("admin-pw-3302");
    create_plain(&client, "db/admin", admin).await;
    let Some(c) = open(&server, "wizard-database").await else {
        return;
    };
    c.sign_in_root(&server).await;
    c.go("/console/secrets/new").await;
    c.press("a database login").await;
    c.fill("#name", "db/app").await;
    c.fill("#host", "127.0.0.1").await;
    c.fill("#username", "app").await;
    c.fill("#password", "app-pw-3302").await;
    remember_value("app-pw-3302");
    c.fill("#dbname", "app").await;
    c.click("#function option[value=kura-postgres-alternating-users]")
        .await;
    c.fill("#every", "7").await;
    c.click("#immediately").await;
    // Alternating users need the administrator's secret.
    c.press("Review").await;
    c.assert_text("kura-postgres-alternating-users needs the administrator's secret")
        .await;
    // A MySQL function for a PostgreSQL login.
    c.click("#function option[value=kura-mysql-single-user]")
        .await;
    c.press("Review").await;
    c.assert_text("kura-mysql-single-user does not rotate postgres users")
        .await;
    c.click("#function option[value=kura-postgres-alternating-users]")
        .await;
    c.fill("#masterarn", "db/admin").await;
    c.press("Review").await;
    c.assert_text("Review: db/app").await;
    let review = c.find("#review-facts").await.text().await.unwrap();
    for fact in [
        "kura-postgres-alternating-users",
        "every 7 days",
        "db/admin",
        "(hidden)",
    ] {
        assert!(review.contains(fact), "{fact} in {review}");
    }
    assert!(
        !c.text().await.contains("app-pw-3302"),
        "the password is not shown"
    );
    // Back to the form and forward again: nothing is lost on the way.
    c.press("Back to edit").await;
    assert_eq!(
        c.find("#masterarn").await.value().await.unwrap().as_deref(),
        Some("db/admin")
    );
    c.press("Review").await;
    c.press("Create secret").await;
    c.assert_text("Created the secret db/app").await;
    c.assert_text("Rotation is on with kura-postgres-alternating-users")
        .await;
    assert_eq!(
        json_value(&client, "db/app").await,
        json!({"engine": "postgres", "host": "127.0.0.1", "port": 5432, "username": "app",
            "password": "app-pw-3302", "dbname": "app", "masterarn": "db/admin"})
    );
    let d = client
        .describe_secret()
        .secret_id("db/app")
        .send()
        .await
        .unwrap();
    assert_eq!(d.rotation_enabled(), Some(true));
    assert!(
        d.rotation_lambda_arn()
            .unwrap()
            .ends_with(":kura-postgres-alternating-users"),
        "{:?}",
        d.rotation_lambda_arn()
    );
    assert_eq!(
        d.rotation_rules().unwrap().automatically_after_days(),
        Some(7)
    );
    c.assert_text("every 7 days").await;
    c.finish().await;
}

#[tokio::test]
async fn the_server_wizard_creates_a_key_pair_login_with_rotation() {
    let server = Server::start().await;
    let client = server.client().await;
    let Some(c) = open(&server, "wizard-server").await else {
        return;
    };
    c.sign_in_root(&server).await;
    c.go("/console/secrets/new/server").await;
    c.fill("#name", "hosts/web1/deploy").await;
    c.fill("#host", "web1.internal").await;
    c.fill("#username", "deploy").await;
    c.click("#auth-keypair").await;
    let private = "-----BEGIN OPENSSH PRIVATE KEY-----\nwizard-private-key-5150\n-----END OPENSSH PRIVATE KEY-----";
    remember_value("wizard-private-key-5150");
    c.fill("#private_key", private).await;
    c.fill(
        "#public_key",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIWizard deploy",
    )
    .await;
    c.click("#key_type option[value=ed25519]").await;
    c.click("#function option[value=kura-ssh-password]").await;
    c.fill("#every", "").await;
    c.fill("#expression", "cron(0 3 ? * SUN *)").await;
    c.fill("#duration", "2h").await;
    c.click("#immediately").await;
    c.press("Review").await;
    c.assert_text("this login is a key pair: choose kura-ssh-keypair")
        .await;
    c.click("#function option[value=kura-ssh-keypair]").await;
    c.press("Review").await;
    c.assert_text("give it (ssh-keyscan -t ed25519 HOST)").await;
    c.click("#trust_on_first_use").await;
    c.press("Review").await;
    c.assert_text("cron(0 3 ? * SUN *), within 2h").await;
    assert!(!c.text().await.contains("wizard-private-key-5150"));
    c.press("Create secret").await;
    c.assert_text("Created the secret hosts/web1/deploy").await;
    assert_eq!(
        json_value(&client, "hosts/web1/deploy").await,
        json!({"host": "web1.internal", "port": 22, "username": "deploy",
            "private_key": private, "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIWizard deploy",
            "key_type": "ed25519", "trust_on_first_use": true})
    );
    let d = client
        .describe_secret()
        .secret_id("hosts/web1/deploy")
        .send()
        .await
        .unwrap();
    assert_eq!(d.rotation_enabled(), Some(true));
    assert!(
        d.rotation_lambda_arn()
            .unwrap()
            .ends_with(":kura-ssh-keypair")
    );
    let rules = d.rotation_rules().unwrap();
    assert_eq!(rules.schedule_expression(), Some("cron(0 3 ? * SUN *)"));
    assert_eq!(rules.duration(), Some("2h"));
    c.assert_text("cron(0 3 ? * SUN *)").await;
    c.finish().await;
}

#[tokio::test]
async fn the_access_key_wizard_makes_a_key_and_rolls_back_when_refused() {
    let server = Server::start().await;
    let client = server.client().await;
    server
        .kura("CreateUser", &json!({"UserName": "svc"}).to_string())
        .await
        .assert_ok();
    // May create and delete secrets and keys, not turn rotation on.
    let (akid, secret) = limited_user(
        &server,
        "creator",
        &[
            "secretsmanager:CreateSecret",
            "secretsmanager:DeleteSecret",
            "kura:CreateAccessKey",
            "kura:DeleteAccessKey",
            "kura:ListUsers",
        ],
    )
    .await;
    let Some(c) = open(&server, "wizard-access-key").await else {
        return;
    };
    c.sign_in(&akid, &secret).await;
    c.go("/console/secrets/new/access-key").await;
    c.fill("#name", "keys/svc").await;
    c.fill("#user_name", "svc").await;
    c.fill("#every", "90").await;
    c.press("Review").await;
    c.assert_text("a new key, created with the secret").await;
    c.press("Create secret").await;
    c.assert_text("Nothing was created: rotation could not be turned on (AccessDeniedException")
        .await;
    c.assert_text("secretsmanager:RotateSecret").await;
    c.assert_text("was deleted again").await;
    assert_no_secret(&client, "keys/svc").await;
    let keys = server
        .kura("ListAccessKeys", &json!({"UserName": "svc"}).to_string())
        .await
        .assert_ok();
    assert_eq!(
        keys["AccessKeyMetadata"],
        json!([]),
        "the key made for it is gone"
    );

    c.press("Sign out").await;
    c.sign_in_root(&server).await;
    c.go("/console/secrets/new/access-key").await;
    c.fill("#name", "keys/svc").await;
    c.fill("#user_name", "svc").await;
    c.fill("#every", "90").await;
    c.click("#immediately").await;
    c.press("Review").await;
    c.press("Create secret").await;
    c.assert_text("Rotation is on with kura-access-key").await;
    let value = json_value(&client, "keys/svc").await;
    remember_value(value["SecretAccessKey"].as_str().unwrap());
    let keys = server
        .kura("ListAccessKeys", &json!({"UserName": "svc"}).to_string())
        .await
        .assert_ok();
    assert_eq!(
        keys["AccessKeyMetadata"][0]["AccessKeyId"],
        value["AccessKeyId"]
    );
    assert_eq!(value["UserName"], "svc");
    let d = client
        .describe_secret()
        .secret_id("keys/svc")
        .send()
        .await
        .unwrap();
    assert_eq!(d.rotation_enabled(), Some(true));
    assert!(
        d.rotation_lambda_arn()
            .unwrap()
            .ends_with(":kura-access-key")
    );
    assert_eq!(
        d.rotation_rules().unwrap().automatically_after_days(),
        Some(90)
    );
    c.finish().await;
}

#[tokio::test]
async fn delete_with_a_window_restore_then_delete_at_once() {
    let server = Server::start().await;
    let client = server.client().await;
    create_plain(&client, "tmp/doomed", "doomed-value-3381").await;
    remember_value("doomed-value-3381");
    let Some(c) = open(&server, "delete-restore").await else {
        return;
    };
    c.sign_in_root(&server).await;
    c.go("/console/secret?id=tmp/doomed").await;
    c.fill("#days", "7").await;
    c.press("Schedule deletion").await;
    c.assert_text("will be deleted after its recovery window")
        .await;
    c.assert_text("Pending deletion").await;
    c.assert_text("Deletion date").await;
    let d = client
        .describe_secret()
        .secret_id("tmp/doomed")
        .send()
        .await
        .unwrap();
    assert_near(d.deleted_date(), now_secs(), 60, "DeletedDate");
    c.press("Restore secret").await;
    c.assert_text("Restored the secret tmp/doomed").await;
    let d = client
        .describe_secret()
        .secret_id("tmp/doomed")
        .send()
        .await
        .unwrap();
    assert!(d.deleted_date().is_none());
    // A wrong name deletes nothing.
    c.fill("#confirm", "tmp/doome").await;
    c.press("Delete now").await;
    c.assert_text("Nothing was deleted").await;
    assert_eq!(get_string(&client, "tmp/doomed").await, "doomed-value-3381");
    c.fill("#confirm", "tmp/doomed").await;
    c.press("Delete now").await;
    c.assert_text("Deleted the secret tmp/doomed").await;
    assert_eq!(c.path().await, "/console/secrets");
    assert_no_secret(&client, "tmp/doomed").await;
    c.finish().await;
}

#[tokio::test]
async fn the_audit_trail_filters_and_pages() {
    let server = Server::start().await;
    let client = server.client().await;
    create_plain(&client, "audit/one", "audited-value-1").await;
    create_plain(&client, "audit/two", "audited-value-2").await;
    remember_value("audited-value-1");
    get_string(&client, "audit/one").await;
    get_string(&client, "audit/two").await;
    let Some(c) = open(&server, "audit").await else {
        return;
    };
    c.sign_in_root(&server).await;
    c.go("/console/audit").await;
    c.assert_text("secretsmanager:CreateSecret").await;
    c.fill("#action", "secretsmanager:GetSecretValue").await;
    c.press("Filter").await;
    let rows = c.browser.find_all(By::Css("tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 2, "{}", c.text().await);
    assert!(!c.text().await.contains("secretsmanager:CreateSecret"));
    // Paging: one a page.
    let path = c.path().await.replace("size=50", "size=1");
    c.go(&path).await;
    assert_eq!(
        c.browser.find_all(By::Css("tbody tr")).await.unwrap().len(),
        1
    );
    c.press("Next page").await;
    assert_eq!(
        c.browser.find_all(By::Css("tbody tr")).await.unwrap().len(),
        1
    );
    // One secret by its name, newest first, paged.
    c.go("/console/audit").await;
    c.fill("#secret", "audit/one").await;
    c.press("Filter").await;
    let rows = c.find("tbody").await.text().await.unwrap();
    assert!(!rows.contains("audit/two"), "{rows}");
    let (read, created) = (
        rows.find("secretsmanager:GetSecretValue")
            .expect("the read"),
        rows.find("secretsmanager:CreateSecret")
            .expect("the creation"),
    );
    assert!(read < created, "newest first: {rows}");
    let path = c.path().await.replace("size=50", "size=1");
    c.go(&path).await;
    // Finding the secret by its name is the user's own DescribeSecret: the newest record.
    let rows = c.find("tbody").await.text().await.unwrap();
    assert!(rows.contains("secretsmanager:DescribeSecret"), "{rows}");
    assert_eq!(
        c.browser.find_all(By::Css("tbody tr")).await.unwrap().len(),
        1
    );
    c.press("Next page").await;
    assert_eq!(
        c.browser.find_all(By::Css("tbody tr")).await.unwrap().len(),
        1
    );
    // Errors only, today.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    c.go(&format!(
        "/console/audit?outcome=Error&from={today}&to={today}"
    ))
    .await;
    c.assert_text("No audit records match").await;
    c.go("/console/audit?secret=audit/none").await;
    c.assert_text("There is no secret \"audit/none\"").await;
    c.go("/console/audit").await;
    c.finish().await;
}

#[tokio::test]
async fn a_user_without_permission_sees_access_denied() {
    let server = Server::start().await;
    let client = server.client().await;
    create_plain(&client, "team/secret", "not-for-viewers-6610").await;
    remember_value("not-for-viewers-6610");
    server
        .kura("CreateUser", &json!({"UserName": "viewer"}).to_string())
        .await
        .assert_ok();
    let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
        "secretsmanager:ListSecrets", "secretsmanager:DescribeSecret",
        "secretsmanager:ListSecretVersionIds"], "Resource": "*"}]});
    server
        .kura(
            "PutUserPolicy",
            &json!({"UserName": "viewer", "PolicyName": "view", "PolicyDocument": doc}).to_string(),
        )
        .await
        .assert_ok();
    let (akid, secret) = server.new_access_key("viewer").await;
    remember_value(&secret);
    let Some(c) = open(&server, "access-denied").await else {
        return;
    };
    c.sign_in(&akid, &secret).await;
    c.assert_text("team/secret").await;
    c.assert_text("viewer").await;
    c.go("/console/secret?id=team/secret").await;
    c.fill("#confirm", "team/secret").await;
    c.press("Delete now").await;
    c.assert_text("AccessDeniedException").await;
    c.press("Reveal value").await;
    c.assert_text("AccessDeniedException").await;
    c.assert_text("secretsmanager:GetSecretValue").await;
    assert!(!c.text().await.contains("not-for-viewers-6610"));
    assert_eq!(
        get_string(&client, "team/secret").await,
        "not-for-viewers-6610"
    );
    let denied = audit(&server, json!({"Action": "secretsmanager:GetSecretValue"})).await;
    assert!(
        denied.iter().any(
            |r| r["Principal"].as_str().unwrap().ends_with(":user/viewer")
                && r["Decision"] == "Deny"
        ),
        "{denied:?}"
    );
    c.finish().await;
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused() {
    let server = Server::start().await;
    let client = server.client().await;
    create_plain(&client, "csrf/target", "csrf-protected-4410").await;
    remember_value("csrf-protected-4410");
    let Some(c) = open(&server, "csrf").await else {
        return;
    };
    c.sign_in_root(&server).await;
    c.go("/console/secret?id=csrf/target").await;
    // A request forged elsewhere: the session's cookie, no token.
    let cookie = c.session_cookie().await;
    let forged = http_client()
        .post(format!("{}/console/secret/delete", server.endpoint()))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("id=csrf%2Ftarget&now=1&confirm=csrf%2Ftarget")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let body = forged.text().await.unwrap();
    assert!(body.contains("CSRF token is missing or wrong"), "{body}");
    let wrong = http_client()
        .post(format!("{}/console/secret/reveal", server.endpoint()))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("id=csrf%2Ftarget&csrf=0000")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    assert!(!wrong.text().await.unwrap().contains("csrf-protected-4410"));
    assert_eq!(
        get_string(&client, "csrf/target").await,
        "csrf-protected-4410"
    );
    let refused = audit(&server, json!({"Action": "console:POST"})).await;
    assert_eq!(refused.len(), 2, "{refused:?}");
    // The same in the browser: the form's token removed before it is sent.
    c.browser
        .execute(
            "document.querySelectorAll('input[name=csrf]').forEach(e => e.remove())",
            vec![],
        )
        .await
        .unwrap();
    c.press("Reveal value").await;
    c.assert_text("CSRF token is missing or wrong").await;
    c.finish().await;
}

#[tokio::test]
async fn an_idle_session_ends_and_sign_out_ends_it_too() {
    // 5 s: long enough that a loaded machine's slow browser still comes back in time.
    let server = Server::start_with(&["--console-idle-timeout", "5"]).await;
    let Some(c) = open(&server, "session-expired").await else {
        return;
    };
    c.sign_in_root(&server).await;
    c.press("Sign out").await;
    c.assert_text("You signed out").await;
    c.go("/console/secrets").await;
    assert_eq!(c.path().await, "/console/sign-in");
    c.sign_in_root(&server).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    c.go("/console/audit").await;
    assert_eq!(
        c.path().await,
        "/console/audit",
        "used within the idle timeout"
    );
    tokio::time::sleep(Duration::from_millis(5500)).await;
    c.go("/console/secrets").await;
    assert_eq!(c.path().await, "/console/sign-in?ended=1");
    c.assert_text("Your session ended").await;
    c.finish().await;
}

#[tokio::test]
async fn the_pages_fit_a_narrow_screen() {
    let server = Server::start().await;
    let client = server.client().await;
    create_plain(
        &client,
        "mobile/a-rather-long-secret-name/for-the-narrow-screen",
        "narrow-value-1",
    )
    .await;
    remember_value("narrow-value-1");
    root_and_template(&server).await;
    let Some(c) = open(&server, "narrow").await else {
        return;
    };
    c.browser.set_window_rect(0, 0, 360, 780).await.unwrap();
    c.sign_in_root(&server).await;
    for path in [
        "/console/secrets",
        "/console/secret?id=mobile/a-rather-long-secret-name/for-the-narrow-screen",
        "/console/secrets/new",
        "/console/secrets/new/database",
        "/console/secrets/new/server",
        "/console/secrets/new/access-key",
        "/console/audit",
        "/console/users",
        "/console/functions",
        "/console/targets",
        "/console/secrets/new/certificate",
        "/console/certificates",
        "/console/certificates/ca?name=root",
    ] {
        c.go(path).await;
        // Tables scroll inside their box; the page itself does not scroll sideways.
        let overflow = c
            .browser
            .execute(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
                vec![],
            )
            .await
            .unwrap();
        // What sticks out past the right edge, to say what to fix.
        let wide = c
            .browser
            .execute(
                "const w = document.documentElement.clientWidth; \
                 return [...document.querySelectorAll('body *')] \
                   .filter(e => e.getBoundingClientRect().right > w + 0.5) \
                   .slice(0, 6) \
                   .map(e => `${e.tagName.toLowerCase()}.${e.className} ${Math.round(e.getBoundingClientRect().right)}px`);",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            overflow.json().as_i64(),
            Some(0),
            "{path} is wider than 360 px: {}",
            wide.json()
        );
        // Every input has a label.
        let unlabelled = c
            .browser
            .execute(
                "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                   .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
                   .map(e => e.name)",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            unlabelled.json(),
            &json!([]),
            "inputs without a label on {path}"
        );
    }
    c.go("/console/secret?id=mobile/a-rather-long-secret-name/for-the-narrow-screen")
        .await;
    c.finish().await;
}

/// The version holding `label`.
fn holder(stages: &Stages, label: &str) -> String {
    stages
        .iter()
        .find(|(_, labels)| labels.iter().any(|l| l == label))
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("no version has {label}: {stages:?}"))
}

#[tokio::test]
async fn move_awscurrent_back_to_the_previous_version() {
    let server = Server::start().await;
    let client = server.client().await;
    create_plain(&client, "labels/app", "first-value-2841").await;
    let first = holder(&describe_stages(&client, "labels/app").await, "AWSCURRENT");
    put_string(&client, "labels/app", "second-value-2841", &token(2)).await;
    remember_value("first-value-2841");
    remember_value("second-value-2841");
    let Some(c) = open(&server, "move-label").await else {
        return;
    };
    c.sign_in_root(&server).await;
    c.go("/console/secret?id=labels/app").await;
    c.fill("#label", "AWSCURRENT").await;
    c.click(&format!("#to option[value='{first}']")).await;
    c.press("Move label").await;
    c.assert_text(&format!("Moved AWSCURRENT to version {first}"))
        .await;
    assert_eq!(get_string(&client, "labels/app").await, "first-value-2841");
    let stages = describe_stages(&client, "labels/app").await;
    assert_eq!(holder(&stages, "AWSCURRENT"), first, "{stages:?}");
    // AWSPREVIOUS follows, as UpdateSecretVersionStage does it.
    assert_ne!(holder(&stages, "AWSPREVIOUS"), first, "{stages:?}");
    c.finish().await;
}

#[tokio::test]
async fn the_rotation_editor_turns_rotation_on_and_off() {
    let server = Server::start().await;
    let client = server.client().await;
    create_plain(&client, "sched/app", "scheduled-value-7719").await;
    remember_value("scheduled-value-7719");
    let Some(c) = open(&server, "rotation-editor").await else {
        return;
    };
    c.sign_in_root(&server).await;
    c.go("/console/secret?id=sched/app").await;
    c.click("#edit-rotation summary").await;
    // Neither days nor an expression: nothing changes, and the page says why.
    c.press("Save rotation").await;
    c.assert_text("Give either a number of hours, days or months, or a schedule expression")
        .await;
    c.click("#edit-rotation summary").await;
    c.fill("#expression", "rate(10 days)").await;
    c.fill("#duration", "3h").await;
    c.click("#immediately").await;
    c.press("Save rotation").await;
    c.assert_text("Saved the rotation schedule").await;
    let d = client
        .describe_secret()
        .secret_id("sched/app")
        .send()
        .await
        .unwrap();
    assert_eq!(d.rotation_enabled(), Some(true));
    let rules = d.rotation_rules().expect("rotation rules");
    assert_eq!(rules.schedule_expression(), Some("rate(10 days)"));
    assert_eq!(rules.duration(), Some("3h"));
    // Not rotated: "rotate immediately" was unticked.
    assert_eq!(
        get_string(&client, "sched/app").await,
        "scheduled-value-7719"
    );
    c.assert_text("rate(10 days)").await;
    c.click("#edit-rotation summary").await;
    c.press("Turn off automatic rotation").await;
    c.assert_text("Turned off automatic rotation").await;
    let d = client
        .describe_secret()
        .secret_id("sched/app")
        .send()
        .await
        .unwrap();
    assert_ne!(d.rotation_enabled(), Some(true));
    c.finish().await;
}

/// The dates a schedule preview lists.
async fn preview_dates(c: &Console) -> Vec<String> {
    let mut out = Vec::new();
    for li in c.browser.find_all(By::Css("#preview li")).await.unwrap() {
        out.push(li.text().await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_schedule_preview_lists_the_next_five_rotations() {
    let server = Server::start_with(&["--test-clock"]).await;
    let client = server.client().await;
    // Monday 2027-03-01 15:20 UTC.
    let now = chrono::NaiveDate::from_ymd_opt(2027, 3, 1)
        .unwrap()
        .and_hms_opt(15, 20, 0)
        .unwrap()
        .and_utc()
        .timestamp();
    server
        .kura("SetClock", &json!({"Time": now}).to_string())
        .await
        .assert_ok();
    create_plain(&client, "sched/preview", "preview-value-6021").await;
    remember_value("preview-value-6021");
    let Some(c) = open(&server, "schedule-preview").await else {
        return;
    };
    c.sign_in_root(&server).await;
    c.go("/console/secret?id=sched/preview").await;
    c.click("#edit-rotation summary").await;
    c.fill("#expression", "cron(0 4 ? * MON *)").await;
    c.press("Preview dates").await;
    let first = preview_dates(&c).await;
    assert_eq!(first.len(), 5, "{first:?}");
    for (date, d) in first.iter().zip([
        "2027-03-08",
        "2027-03-15",
        "2027-03-22",
        "2027-03-29",
        "2027-04-05",
    ]) {
        assert!(date.starts_with(&format!("{d} 04:00 UTC")), "{first:?}");
    }
    assert!(first[0].starts_with("2027-03-08 04:00 UTC"), "{first:?}");
    assert!(first[4].starts_with("2027-04-05 04:00 UTC"), "{first:?}");
    // The form is as it was posted, still open, nothing saved.
    assert_eq!(
        c.find("#expression")
            .await
            .value()
            .await
            .unwrap()
            .as_deref(),
        Some("cron(0 4 ? * MON *)")
    );
    let d = client
        .describe_secret()
        .secret_id("sched/preview")
        .send()
        .await
        .unwrap();
    assert_ne!(d.rotation_enabled(), Some(true));
    // A broken expression: kura-core's own message.
    c.fill("#expression", "cron(61 4 ? * MON *)").await;
    c.press("Preview dates").await;
    let why = c.find("#preview").await.text().await.unwrap();
    assert!(
        why.contains("ScheduleExpression cron(61 4 ? * MON *)"),
        "{why}"
    );
    // Every 12 hours, counted from now.
    c.fill("#expression", "").await;
    c.fill("#every", "12").await;
    c.click("#unit option[value=hours]").await;
    c.press("Preview dates").await;
    let dates = preview_dates(&c).await;
    assert_eq!(dates.len(), 5, "{dates:?}");
    assert!(dates[0].starts_with("2027-03-02 03:20 UTC"), "{dates:?}");
    assert!(dates[4].starts_with("2027-03-04 03:20 UTC"), "{dates:?}");
    c.click("#immediately").await;
    c.press("Save rotation").await;
    c.assert_text("Saved the rotation schedule").await;
    let d = client
        .describe_secret()
        .secret_id("sched/preview")
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.rotation_rules().unwrap().schedule_expression(),
        Some("rate(12 hours)")
    );
    // The wizards' builder previews the same way.
    c.go("/console/secrets/new/database").await;
    c.fill("#every", "").await;
    c.fill("#expression", "rate(1 months)").await;
    c.press("Preview dates").await;
    let dates = preview_dates(&c).await;
    assert!(dates[0].starts_with("2027-04-01 00:00 UTC"), "{dates:?}");
    c.go("/console/secret?id=sched/preview").await;
    c.click("#edit-rotation summary").await;
    c.fill("#every", "").await;
    c.fill("#expression", "cron(0 4 ? * MON *)").await;
    c.press("Preview dates").await;
    c.finish().await;
}

#[tokio::test]
async fn a_resource_policy_is_validated_saved_and_deleted() {
    let server = Server::start().await;
    let client = server.client().await;
    create_plain(&client, "policy/app", "policy-value-7120").await;
    remember_value("policy-value-7120");
    let (akid, secret) =
        limited_user(&server, "auditor", &["secretsmanager:GetResourcePolicy"]).await;
    let auditor = server.kura("ListUsers", "{}").await.assert_ok()["Users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["UserName"] == "auditor")
        .unwrap()["Arn"]
        .as_str()
        .unwrap()
        .to_string();
    let Some(c) = open(&server, "resource-policy").await else {
        return;
    };
    c.sign_in_root(&server).await;
    c.go("/console/secret?id=policy/app").await;
    c.assert_text("No resource policy").await;
    c.fill("#resource_policy", "{not json").await;
    c.press("Validate policy").await;
    c.assert_text("POLICY_SYNTAX").await;
    let public = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
        "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]});
    c.fill("#resource_policy", &public.to_string()).await;
    c.press("Validate policy").await;
    c.assert_text("BROAD_ACCESS").await;
    // Saving it with BlockPublicPolicy on is refused, the text kept.
    c.press("Save policy").await;
    c.assert_text("PublicPolicyException").await;
    let kept = c
        .find("#resource_policy")
        .await
        .value()
        .await
        .unwrap()
        .unwrap();
    assert!(kept.contains("\"Principal\":\"*\""), "{kept}");
    let fine = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": auditor}, "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]});
    c.fill("#resource_policy", &fine.to_string()).await;
    c.press("Validate policy").await;
    c.assert_text("The policy is valid: no findings").await;
    c.press("Save policy").await;
    c.assert_text("Saved the resource policy").await;
    let stored = client
        .get_resource_policy()
        .secret_id("policy/app")
        .send()
        .await
        .unwrap();
    let stored: serde_json::Value =
        serde_json::from_str(stored.resource_policy().unwrap()).unwrap();
    assert_eq!(stored["Statement"][0]["Principal"]["AWS"], auditor.as_str());
    // The auditor sees it, and may not change it.
    c.press("Sign out").await;
    c.sign_in(&akid, &secret).await;
    c.go("/console/secret?id=policy/app").await;
    c.assert_text(&auditor).await;
    c.press("Save policy").await;
    c.assert_text("AccessDeniedException").await;
    c.assert_text("secretsmanager:PutResourcePolicy").await;
    c.press("Sign out").await;
    c.sign_in_root(&server).await;
    c.go("/console/secret?id=policy/app").await;
    c.press("Delete resource policy").await;
    c.assert_text("Deleted the resource policy").await;
    let gone = client
        .get_resource_policy()
        .secret_id("policy/app")
        .send()
        .await
        .unwrap();
    assert!(gone.resource_policy().is_none());
    c.finish().await;
}

#[tokio::test]
async fn functions_and_notification_targets_are_created_and_deleted() {
    let server = Server::start().await;
    let (akid, secret) = limited_user(&server, "outsider", &[]).await;
    let Some(c) = open(&server, "functions-targets").await else {
        return;
    };
    c.sign_in_root(&server).await;
    c.press("Functions").await;
    c.assert_text("kura-postgres-single-user").await;
    c.fill("#fn_name", "app-hook").await;
    c.fill("#fn_url", "http://127.0.0.1:9/rotate").await;
    c.press("Create function").await;
    c.assert_text("Copy its signing secret now").await;
    let signing = c.find("#signing-secret").await.text().await.unwrap();
    remember_value(&signing);
    let listed = server.kura("ListRotationFunctions", "{}").await.assert_ok();
    assert!(
        listed["RotationFunctions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["Name"] == "app-hook" && f["Type"] == "webhook"),
        "{listed}"
    );
    // A command from a relative path: the API's message.
    c.fill("#fn_name", "bad-command").await;
    c.click("#fn_type option[value=command]").await;
    c.fill("#fn_command", "rotate.sh").await;
    c.press("Create function").await;
    c.assert_text("Command[0] must be the absolute path").await;
    c.submitting(
        c.find("button[aria-label='Delete function app-hook']")
            .await,
    )
    .await;
    c.assert_text("Deleted the function app-hook").await;

    c.press("Notifications").await;
    c.fill("#target_url", "http://127.0.0.1:9/events").await;
    c.click("#ev-RotationFailed").await;
    c.click("#ev-SecretDeleted").await;
    c.click("#ev-SecretExpiring").await;
    c.fill("#expiring_days", "14, two").await;
    c.press("Add target").await;
    c.assert_text("\"two\" is not a whole number of days").await;
    c.fill("#target_url", "http://127.0.0.1:9/events").await;
    c.click("#ev-RotationFailed").await;
    c.click("#ev-SecretDeleted").await;
    c.click("#ev-SecretExpiring").await;
    c.fill("#expiring_days", "14, 2").await;
    c.press("Add target").await;
    c.assert_text("Copy its signing secret now").await;
    remember_value(&c.find("#signing-secret").await.text().await.unwrap());
    let targets = server
        .kura("ListNotificationTargets", "{}")
        .await
        .assert_ok();
    let target = &targets["NotificationTargets"][0];
    assert_eq!(
        target["Events"],
        json!(["RotationFailed", "SecretDeleted", "SecretExpiring"]),
        "{target}"
    );
    assert_eq!(target["ExpiringDays"], json!([14, 2]), "{target}");
    c.go("/console/targets").await;
    c.assert_text("RotationFailed, SecretDeleted, SecretExpiring (expiring: 14 d, 2 d)")
        .await;
    c.submitting(
        c.find("button[aria-label='Delete target http://127.0.0.1:9/events']")
            .await,
    )
    .await;
    c.assert_text("Deleted the target").await;
    let targets = server
        .kura("ListNotificationTargets", "{}")
        .await
        .assert_ok();
    assert_eq!(targets["NotificationTargets"], json!([]));

    // Not for users without the permission.
    c.press("Sign out").await;
    c.sign_in(&akid, &secret).await;
    c.go("/console/functions").await;
    c.assert_text("AccessDeniedException").await;
    c.assert_text("kura:ListRotationFunctions").await;
    c.go("/console/targets").await;
    c.assert_text("kura:ListNotificationTargets").await;
    c.press("Sign out").await;
    c.sign_in_root(&server).await;
    c.go("/console/functions").await;
    c.finish().await;
}

#[tokio::test]
async fn over_tls_the_session_cookie_is_secure() {
    let ca = common::tls::TestCa::new("console-test-ca");
    let tmp = tempfile::Builder::new()
        .prefix("kura-test-")
        .tempdir()
        .unwrap();
    let (cert, key) = common::tls::write_pair(tmp.path(), &ca.server_cert(1));
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let server = Server::start_tls(
        tmp,
        &["--tls-cert", &cert, "--tls-key", &key],
        common::tls::ClientTls::trusting(&ca),
    )
    .await;
    let creds = server.credentials();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = http
        .post(format!("{}/console/sign-in", server.endpoint()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "access_key_id={}&secret_access_key={}",
            creds.access_key_id,
            url_encode(&creds.secret_access_key)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
}

#[tokio::test]
async fn an_administrator_creates_a_user_with_a_policy_and_a_key() {
    let server = Server::start().await;
    let client = server.client().await;
    create_plain(&client, "shared/config", "shared-config-3390").await;
    remember_value("shared-config-3390");
    let Some(c) = open(&server, "users").await else {
        return;
    };
    c.sign_in_root(&server).await;
    c.press("Users").await;
    c.fill("#user_name", "alice").await;
    c.press("Create user").await;
    c.assert_text("Created the user alice").await;
    // A document that is not JSON is refused with IAM's error.
    c.click("#put-policy summary").await;
    c.fill("#policy_name", "read").await;
    c.fill("#document", "{not json").await;
    c.press("Save policy").await;
    c.assert_text("MalformedPolicyDocument").await;
    c.click("#put-policy summary").await;
    c.fill("#policy_name", "read").await;
    let doc = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": ["secretsmanager:ListSecrets", "secretsmanager:DescribeSecret"], "Resource": "*"}]});
    c.fill("#document", &doc.to_string()).await;
    c.press("Save policy").await;
    c.assert_text("Saved the policy read").await;
    c.assert_text("secretsmanager:DescribeSecret").await;
    c.press("Create access key").await;
    c.assert_text("Copy its secret now").await;
    let akid = c.find("#new-key-id").await.text().await.unwrap();
    let secret = c.find("#new-key-secret").await.text().await.unwrap();
    remember_value(&secret);
    // Shown once: the next view of the page has only the id.
    c.go("/console/user?name=alice").await;
    c.assert_text(&akid).await;
    assert!(!c.text().await.contains(&secret));
    let keys = server
        .kura("ListAccessKeys", &json!({"UserName": "alice"}).to_string())
        .await
        .assert_ok();
    assert_eq!(keys["AccessKeyMetadata"][0]["AccessKeyId"], akid.as_str());

    // alice signs in with it: she may list, not administer.
    c.press("Sign out").await;
    c.sign_in(&akid, &secret).await;
    c.assert_text("shared/config").await;
    c.go("/console/users").await;
    c.assert_text("AccessDeniedException").await;
    c.press("Sign out").await;

    // Deactivating the key ends what it can do, in the console too.
    c.sign_in_root(&server).await;
    c.go("/console/user?name=alice").await;
    c.press("Deactivate").await;
    c.assert_text("is now Inactive").await;
    c.press("Sign out").await;
    c.sign_in(&akid, &secret).await;
    c.assert_text("UnrecognizedClientException").await;
    c.sign_in_root(&server).await;
    c.go("/console/user?name=alice").await;
    c.finish().await;
}

#[tokio::test]
async fn tags_are_added_and_removed() {
    let server = Server::start().await;
    let client = server.client().await;
    create_plain(&client, "tagged/app", "tagged-value-5120").await;
    remember_value("tagged-value-5120");
    let Some(c) = open(&server, "tags").await else {
        return;
    };
    c.sign_in_root(&server).await;
    c.go("/console/secret?id=tagged/app").await;
    c.fill("#tag_key", "team").await;
    c.fill("#tag_value", "payments").await;
    c.press("Add tag").await;
    c.assert_text("Tagged with team").await;
    c.fill("#tag_key", "env").await;
    c.fill("#tag_value", "prod").await;
    c.press("Add tag").await;
    let tags = describe_tags(&client, "tagged/app").await;
    assert_eq!(tags.get("team").map(String::as_str), Some("payments"));
    assert_eq!(tags.get("env").map(String::as_str), Some("prod"));
    c.submitting(c.find("button[aria-label='Remove tag env']").await)
        .await;
    c.assert_text("Removed the tag env").await;
    let tags = describe_tags(&client, "tagged/app").await;
    assert!(!tags.contains_key("env"), "{tags:?}");
    assert!(tags.contains_key("team"), "{tags:?}");
    c.finish().await;
}

/// A root CA `root` and a template `web` for names below example.internal, made through the
/// API.
async fn root_and_template(server: &Server) {
    server
        .kura(
            "CreateCertificateAuthority",
            &json!({"Name": "root", "Type": "root", "CommonName": "Console Test Root"}).to_string(),
        )
        .await
        .assert_ok();
    server
        .kura(
            "CreateCertificateTemplate",
            &json!({"Name": "web", "CertificateAuthority": "root",
                "AllowedDomains": [".example.internal"], "Ttl": "30d", "MaxTtl": "90d"})
            .to_string(),
        )
        .await
        .assert_ok();
}

/// The secret's value once its first certificate is issued (the rotation runs in the
/// background).
async fn issued(client: &aws_sdk_secretsmanager::Client, id: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = json_value(client, id).await;
        if v.get("serial_number").is_some() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} holds no certificate 30 s after its rotation started: {}",
            v
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn get_pki(server: &Server, path: &str) -> reqwest::Response {
    let r = server
        .http()
        .get(format!("{}{path}", server.endpoint()))
        .send()
        .await
        .expect("GET a /pki/ path");
    assert_eq!(r.status(), 200, "GET {path}");
    r
}

/// `openssl` with `args`, in `dir`; its standard output.
fn openssl(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn the_certificate_wizard_checks_the_template_and_issues_a_certificate() {
    if !have("openssl") {
        return;
    }
    let server = Server::start().await;
    let client = server.client().await;
    root_and_template(&server).await;
    let Some(c) = open(&server, "wizard-certificate").await else {
        return;
    };
    c.sign_in_root(&server).await;
    c.press("Create secret").await;
    c.press("a certificate").await;
    assert_eq!(c.path().await, "/console/secrets/new/certificate");
    c.fill("#name", "certs/app").await;
    c.click("#template option[value=web]").await;
    c.fill("#common_name", "app.example.org").await;
    // One per line: the browser sends the textarea's line ends as CRLF.
    c.fill("#alt_names", "api.example.internal\nwww.example.internal")
        .await;
    c.click("#revoke_replaced").await;
    c.press("Review").await;
    c.assert_text(
        "Template web refuses common_name \"app.example.org\": rule AllowedDomains allows only .example.internal",
    )
    .await;
    c.fill("#common_name", "app.example.internal").await;
    c.fill("#ip_sans", "10.0.0.7").await;
    c.press("Review").await;
    c.assert_text("Template web refuses ip_sans: rule AllowIpSans is false")
        .await;
    c.fill("#ip_sans", "").await;
    c.press("Review").await;
    c.assert_text("Review: certs/app").await;
    c.assert_text("api.example.internal, www.example.internal")
        .await;
    c.assert_text("kura-private-certificate").await;
    c.press("Create secret").await;
    c.assert_text("Created the secret certs/app").await;
    c.assert_text("the first certificate is being issued").await;

    let v = issued(&client, "certs/app").await;
    assert_eq!(v["template"], "web");
    assert_eq!(v["common_name"], "app.example.internal");
    assert_eq!(
        v["alt_names"],
        json!(["api.example.internal", "www.example.internal"])
    );
    assert_eq!(v["rotate_keys"], true);
    assert_eq!(v["revoke_replaced"], true);
    assert_eq!(v["issuer"], "root");
    let d = client
        .describe_secret()
        .secret_id("certs/app")
        .send()
        .await
        .unwrap();
    assert!(
        d.rotation_lambda_arn()
            .unwrap()
            .ends_with(":kura-private-certificate")
    );
    assert_eq!(
        d.rotation_rules().unwrap().automatically_after_days(),
        Some(20)
    );

    // The certificate chains to the CA the server publishes.
    let tmp = tempfile::tempdir().unwrap();
    let ca = get_pki(&server, "/pki/root/ca.pem")
        .await
        .text()
        .await
        .unwrap();
    std::fs::write(tmp.path().join("root.pem"), ca).unwrap();
    std::fs::write(
        tmp.path().join("app.pem"),
        v["certificate"].as_str().unwrap(),
    )
    .unwrap();
    let verified = openssl(tmp.path(), &["verify", "-CAfile", "root.pem", "app.pem"]);
    assert!(verified.contains("app.pem: OK"), "{verified}");

    // The secret page shows the certificate only once the value is revealed.
    let serial = v["serial_number"].as_str().unwrap();
    c.go("/console/secret?id=certs/app").await;
    c.assert_text("reveal the value to see them").await;
    // Its expiration is metadata (the certificate set it): shown without the value.
    let details = c.find("#details + dl").await.text().await.unwrap();
    let expires = v["expiration_date"].as_str().unwrap();
    assert!(
        details.contains("Expires") && details.contains(&expires[..10]),
        "the expiration {expires} in {details}"
    );
    assert!(
        !c.text().await.contains(serial),
        "no value read on a page view"
    );
    c.press("Reveal certificate details").await;
    let facts = c.find("#certificate-facts").await.text().await.unwrap();
    for expected in [
        "CN=app.example.internal",
        "api.example.internal, www.example.internal",
        "root",
        serial,
        v["key_algorithm"].as_str().unwrap(),
    ] {
        assert!(facts.contains(expected), "{expected:?} in {facts}");
    }
    c.find("#certificate")
        .await
        .scroll_into_view()
        .await
        .unwrap();
    c.finish().await;
}

#[tokio::test]
async fn the_certificates_pages_create_cas_a_template_and_revoke() {
    if !have("openssl") {
        return;
    }
    let server = Server::start().await;
    let client = server.client().await;
    let Some(c) = open(&server, "certificates").await else {
        return;
    };
    c.sign_in_root(&server).await;
    c.press("Certificates").await;
    c.assert_text("No certificate authority yet.").await;
    c.fill("#ca_name", "root").await;
    c.fill("#ca_common_name", "Console Root").await;
    c.click("#ca_key option[value=EC_P384]").await;
    c.press("Create certificate authority").await;
    c.assert_text("Created the certificate authority root")
        .await;
    assert_eq!(c.path().await, "/console/certificates/ca?name=root");
    c.assert_text("BEGIN CERTIFICATE").await;
    let pem_link = c.find("#ca-pem").await.attr("href").await.unwrap();
    assert_eq!(pem_link.as_deref(), Some("/pki/root/ca.pem"));

    c.press("Certificates").await;
    c.fill("#ca_name", "issuing").await;
    c.click("#ca_type option[value=intermediate]").await;
    c.click("#ca_parent option[value=root]").await;
    c.fill("#ca_ttl", "365d").await;
    c.press("Create certificate authority").await;
    c.assert_text("Created the certificate authority issuing")
        .await;
    c.assert_text("Signed by").await;
    c.find("dd a[href='/console/certificates/ca?name=root']")
        .await;

    // A refusal is shown with the form as it was.
    c.press("Certificates").await;
    c.fill("#tpl_name", "web").await;
    c.click("#tpl_ca option[value=issuing]").await;
    c.fill("#tpl_domains", ".example.internal\nexample.internal")
        .await;
    c.fill("#tpl_ttl", "90d").await;
    c.fill("#tpl_max_ttl", "30d").await;
    c.press("Create template").await;
    c.assert_text("InvalidParameterException: Ttl (90d) is longer than MaxTtl (30d)")
        .await;
    c.fill("#tpl_ttl", "30d").await;
    c.fill("#tpl_max_ttl", "90d").await;
    c.click("#tpl_usage_client").await;
    c.press("Create template").await;
    c.assert_text("Created the certificate template web").await;
    let t = server
        .kura(
            "DescribeCertificateTemplate",
            &json!({"Name": "web"}).to_string(),
        )
        .await
        .assert_ok();
    let t = &t["CertificateTemplate"];
    assert_eq!(
        t["AllowedDomains"],
        json!([".example.internal", "example.internal"])
    );
    assert_eq!(t["KeyUsages"], json!(["server", "client"]));
    assert_eq!(t["CertificateAuthority"], "issuing");

    // A certificate issued under it, through the API, revoked on the console.
    client
        .create_secret()
        .name("certs/web")
        .secret_string(
            json!({"template": "web", "common_name": "web.example.internal"}).to_string(),
        )
        .send()
        .await
        .unwrap();
    client
        .rotate_secret()
        .secret_id("certs/web")
        .rotation_lambda_arn("kura-private-certificate")
        .send()
        .await
        .unwrap();
    let v = issued(&client, "certs/web").await;
    let serial = v["serial_number"].as_str().unwrap();
    c.press("Certificates").await;
    c.click("#rv_ca option[value=issuing]").await;
    c.fill("#rv_serial", serial).await;
    c.press("Revoke certificate").await;
    c.assert_text(&format!("Revoked the certificate {serial} of issuing"))
        .await;

    let tmp = tempfile::tempdir().unwrap();
    let crl = get_pki(&server, "/pki/issuing/crl")
        .await
        .bytes()
        .await
        .unwrap();
    std::fs::write(tmp.path().join("issuing.crl"), &crl).unwrap();
    let text = openssl(
        tmp.path(),
        &[
            "crl",
            "-inform",
            "DER",
            "-noout",
            "-text",
            "-in",
            "issuing.crl",
        ],
    )
    .to_ascii_lowercase();
    let bare = serial.replace(':', "").to_ascii_lowercase();
    assert!(text.contains(&bare), "{bare} on the CRL:\n{text}");
    c.go("/console/certificates/ca?name=issuing").await;
    c.finish().await;
}

#[tokio::test]
async fn a_user_without_pki_permission_is_refused_on_the_certificates_pages() {
    let server = Server::start().await;
    let (akid, secret) = limited_user(&server, "app-dev", &[]).await;
    let Some(c) = open(&server, "certificates-denied").await else {
        return;
    };
    c.sign_in(&akid, &secret).await;
    c.press("Certificates").await;
    c.assert_text("AccessDeniedException").await;
    c.assert_text("kura:ListCertificateAuthorities").await;
    c.fill("#ca_name", "mine").await;
    c.press("Create certificate authority").await;
    c.assert_text("kura:CreateCertificateAuthority").await;
    let cas = server
        .kura("ListCertificateAuthorities", "{}")
        .await
        .assert_ok();
    assert_eq!(cas["CertificateAuthorities"], json!([]));
    c.go("/console/secrets/new/certificate").await;
    c.assert_text("kura:ListCertificateTemplates").await;
    c.finish().await;
}

#[tokio::test]
async fn a_multi_line_textarea_value_is_stored_with_lf() {
    let server = Server::start().await;
    let client = server.client().await;
    let Some(c) = open(&server, "line-endings").await else {
        return;
    };
    c.sign_in_root(&server).await;
    c.press("Create secret").await;
    c.fill("#name", "notes/multi-line").await;
    c.fill("#plaintext", "first line\nsecond line\n\nlast line-8841")
        .await;
    remember_value("last line-8841");
    c.press("Create secret").await;
    c.assert_text("Created the secret notes/multi-line").await;
    assert_eq!(
        get_string(&client, "notes/multi-line").await,
        "first line\nsecond line\n\nlast line-8841"
    );
    c.finish().await;
}
