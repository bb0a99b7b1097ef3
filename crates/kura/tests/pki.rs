//! Private certificates end to end (issue 15, points 1-3): a root and an intermediate CA, a
//! template, and a `kura-private-certificate` secret rotated on a schedule under the test
//! clock. Every issued certificate is checked by `openssl verify` against the root (with the
//! intermediate untrusted) and served by a rustls server that a client trusting only the root
//! connects to. Each template rule refuses a request that breaks it, naming the rule; the
//! CRL served at `/pki/<ca>/crl` lists what was revoked; an intermediate's CSR is signed by an
//! external (openssl) root and imported.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DAY: i64 = 86_400;
/// 2030-01-01T00:00:00Z.
const T2030: i64 = 1_893_456_000;

async fn ok_kura(server: &Server, op: &str, body: Value) -> Value {
    server.kura(op, &body.to_string()).await.assert_ok()
}

async fn kura_err(server: &Server, op: &str, body: Value, code: &str) -> String {
    server.kura(op, &body.to_string()).await.assert_error(code)
}

async fn clock(server: &Server) -> i64 {
    let t = ok_kura(server, "AdvanceClock", json!({"Seconds": 0})).await;
    t["Time"].as_f64().expect("the clock's time") as i64
}

async fn get(server: &Server, path: &str) -> reqwest::Response {
    server
        .http()
        .get(format!("{}{path}", server.endpoint()))
        .send()
        .await
        .expect("GET")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write a PEM file");
    p.to_str().unwrap().to_string()
}

/// `openssl verify` of `cert` against `root`, with `intermediate` untrusted, at `at`.
fn openssl_verify(dir: &Path, root: &str, intermediate: &str, cert: &str, at: i64) {
    let root = write(dir, "root.pem", root);
    let leaf = write(dir, "leaf.pem", cert);
    let mut cmd = std::process::Command::new("openssl");
    cmd.args(["verify", "-attime", &at.to_string(), "-CAfile", &root]);
    if !intermediate.is_empty() {
        cmd.args(["-untrusted", &write(dir, "intermediate.pem", intermediate)]);
    }
    let out = cmd.arg(&leaf).output().expect("run openssl verify");
    assert!(
        out.status.success(),
        "openssl verify refused the certificate: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The serial numbers a DER CRL lists (`openssl crl -text`), lowercase hex.
fn crl_serials(dir: &Path, der: &[u8]) -> String {
    let p = dir.join("ca.crl");
    std::fs::write(&p, der).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(&p)
        .output()
        .expect("run openssl crl");
    assert!(
        out.status.success(),
        "openssl cannot read the CRL: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_ascii_lowercase()
}

fn bare(serial: &str) -> String {
    serial.replace(':', "").to_ascii_lowercase()
}

/// rustls' clock for the client: the server's test clock, so certificates issued in 2030 are
/// judged in 2030.
#[derive(Debug)]
struct At(i64);

impl rustls::time_provider::TimeProvider for At {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(Duration::from_secs(
            self.0 as u64,
        )))
    }
}

/// Serves `certificate` + `intermediate` with `key` from a rustls server; a client trusting
/// only `root` connects to it as `name` and exchanges a byte.
async fn serve_and_connect(
    root: &str,
    intermediate: &str,
    certificate: &str,
    key: &str,
    name: &str,
    at: i64,
) {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(format!("{certificate}{intermediate}").as_bytes())
            .collect::<Result<_, _>>()
            .expect("the certificate and chain are PEM");
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("private_key is PEM");
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("rustls takes the issued certificate and key");
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(root.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let client = rustls::ClientConfig::builder_with_details(provider, Arc::new(At(at)))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let served = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.expect("server handshake");
        tls.write_all(b"k").await.unwrap();
        tls.shutdown().await.ok();
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let mut tls = connector
        .connect(ServerName::try_from(name.to_string()).unwrap(), tcp)
        .await
        .expect("a client trusting only the root accepts the issued certificate");
    let mut byte = [0u8; 1];
    tls.read_exact(&mut byte).await.unwrap();
    assert_eq!(&byte, b"k");
    served.await.unwrap();
}

async fn value_of(server: &Server, id: &str) -> Value {
    let c = server.client().await;
    let (_, text, _) = get_stage(&c, id, "AWSCURRENT").await;
    serde_json::from_str(&text).expect("a certificate secret's value is JSON")
}

fn rotate_body(arn: &str, id: &str, rules: Option<Value>) -> Value {
    let mut b =
        json!({"SecretId": id, "RotationLambdaARN": lambda_arn(arn, "kura-private-certificate")});
    if let Some(r) = rules {
        b["RotationRules"] = r;
    }
    b
}

#[tokio::test]
async fn a_certificate_secret_is_issued_again_on_its_schedule_by_an_intermediate() {
    if !have("openssl") {
        return;
    }
    let server = Server::start_with(&["--test-clock"]).await;
    ok_kura(&server, "SetClock", json!({"Time": T2030})).await;
    let tmp = tempfile::tempdir().unwrap();

    let root = ok_kura(
        &server,
        "CreateCertificateAuthority",
        json!({"Name": "root", "Type": "root", "CommonName": "kura test root", "KeyAlgorithm": "EC_P384"}),
    )
    .await["CertificateAuthority"]
        .clone();
    assert_eq!(root["Status"], "Active");
    assert!(root.get("PrivateKey").is_none() && !root.to_string().contains("PRIVATE KEY"));
    let root_pem = root["Certificate"].as_str().unwrap().to_string();
    let served = get(&server, "/pki/root/ca.pem").await;
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "application/x-pem-file");
    assert_eq!(
        served.text().await.unwrap(),
        root_pem,
        "ca.pem is the CA's certificate"
    );
    assert_eq!(get(&server, "/pki/nope/ca.pem").await.status(), 404);

    let int = ok_kura(
        &server,
        "CreateCertificateAuthority",
        json!({"Name": "issuing", "Type": "intermediate", "ParentAuthority": "root", "KeyAlgorithm": "RSA_2048", "Ttl": "365d"}),
    )
    .await["CertificateAuthority"]
        .clone();
    assert_eq!(int["ParentAuthority"], "root");
    let int_pem = int["Certificate"].as_str().unwrap().to_string();
    openssl_verify(tmp.path(), &root_pem, "", &int_pem, T2030);
    let listed = ok_kura(&server, "ListCertificateAuthorities", json!({})).await;
    let names: Vec<&str> = listed["CertificateAuthorities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["issuing", "root"]);

    let t = ok_kura(
        &server,
        "CreateCertificateTemplate",
        json!({
            "Name": "web", "CertificateAuthority": "issuing", "Ttl": "30d", "MaxTtl": "90d",
            "AllowedDomains": ["example.test", ".example.test"], "AllowIpSans": true,
            "KeyAlgorithm": "EC_P256", "KeyUsages": ["server", "client"]
        }),
    )
    .await;
    assert_eq!(t["CertificateTemplate"]["Ttl"], "30d");
    assert_eq!(
        ok_kura(
            &server,
            "DescribeCertificateTemplate",
            json!({"Name": "web"})
        )
        .await,
        t
    );

    let c = server.client().await;
    let request = json!({
        "template": "web", "common_name": "app.example.test",
        "alt_names": ["api.example.test"], "ip_sans": ["127.0.0.1"], "revoke_replaced": true
    });
    let arn = create_plain(&c, "certs/web", &request.to_string()).await;

    // IBM's rule: rotating less often than the certificates live would let them expire.
    let msg = server
        .raw(
            "RotateSecret",
            &rotate_body(
                &arn,
                "certs/web",
                Some(json!({"AutomaticallyAfterDays": 40})),
            )
            .to_string(),
            SignMode::Root,
        )
        .await
        .assert_error("InvalidRequestException");
    assert!(
        msg.contains("longer than the lifetime") && msg.contains("30d"),
        "{msg}"
    );

    server
        .raw(
            "RotateSecret",
            &rotate_body(
                &arn,
                "certs/web",
                Some(json!({"AutomaticallyAfterDays": 20})),
            )
            .to_string(),
            SignMode::Root,
        )
        .await
        .assert_ok();
    wait_rotation_succeeded(&server, "certs/web").await;
    let first = value_of(&server, "certs/web").await;
    for (field, want) in [
        ("template", "web"),
        ("common_name", "app.example.test"),
        ("issuer", "issuing"),
        ("key_algorithm", "EC_P256"),
    ] {
        assert_eq!(first[field], want, "{field} in {first:#}");
    }
    assert_eq!(
        first["intermediate"],
        int_pem.as_str(),
        "the chain up to the root"
    );
    assert_eq!(first["expiration_date"], "2030-01-31T00:00:00Z");
    let cert = first["certificate"].as_str().unwrap();
    let key = first["private_key"].as_str().unwrap();
    openssl_verify(tmp.path(), &root_pem, &int_pem, cert, clock(&server).await);
    serve_and_connect(
        &root_pem,
        &int_pem,
        cert,
        key,
        "api.example.test",
        clock(&server).await,
    )
    .await;

    // The schedule, under the test clock: 20 days on, a new certificate and key.
    let mut now = clock(&server).await;
    let until = now + 22 * DAY;
    let mut second = first.clone();
    while now < until && second["serial_number"] == first["serial_number"] {
        ok_kura(&server, "AdvanceClock", json!({"Seconds": DAY / 2})).await;
        now += DAY / 2;
        let _ = wait_rotation_settled(&server, "certs/web", Duration::from_secs(60)).await;
        second = value_of(&server, "certs/web").await;
    }
    assert_ne!(
        second["serial_number"], first["serial_number"],
        "rotated within 22 days"
    );
    assert_ne!(
        second["private_key"], first["private_key"],
        "rotate_keys defaults to true"
    );
    let at = clock(&server).await;
    openssl_verify(
        tmp.path(),
        &root_pem,
        &int_pem,
        second["certificate"].as_str().unwrap(),
        at,
    );
    serve_and_connect(
        &root_pem,
        &int_pem,
        second["certificate"].as_str().unwrap(),
        second["private_key"].as_str().unwrap(),
        "app.example.test",
        at,
    )
    .await;

    // revoke_replaced: the first certificate is on the intermediate's CRL.
    let crl = get(&server, "/pki/issuing/crl").await;
    assert_eq!(crl.headers()["content-type"], "application/pkix-crl");
    let listed = crl_serials(tmp.path(), &crl.bytes().await.unwrap());
    assert!(
        listed.contains(&bare(first["serial_number"].as_str().unwrap())),
        "{listed}"
    );
    assert!(
        !listed.contains(&bare(second["serial_number"].as_str().unwrap())),
        "{listed}"
    );

    // Kura.RevokeCertificate by serial.
    let revoked = ok_kura(
        &server,
        "RevokeCertificate",
        json!({"CertificateAuthority": "issuing", "SerialNumber": second["serial_number"]}),
    )
    .await;
    assert_eq!(revoked["SerialNumber"], second["serial_number"]);
    let listed = crl_serials(
        tmp.path(),
        &get(&server, "/pki/issuing/crl")
            .await
            .bytes()
            .await
            .unwrap(),
    );
    assert!(
        listed.contains(&bare(second["serial_number"].as_str().unwrap())),
        "{listed}"
    );
    kura_err(
        &server,
        "RevokeCertificate",
        json!({"CertificateAuthority": "issuing", "SerialNumber": "0a:0b"}),
        "ResourceNotFoundException",
    )
    .await;

    // rotate_keys false: the same key, certified again.
    let same = json!({"template": "web", "common_name": "db.example.test", "rotate_keys": false});
    let arn2 = create_plain(&c, "certs/same-key", &same.to_string()).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        server
            .raw(
                "RotateSecret",
                &rotate_body(&arn2, "certs/same-key", None).to_string(),
                SignMode::Root,
            )
            .await
            .assert_ok();
        wait_rotation_succeeded(&server, "certs/same-key").await;
        seen.push(value_of(&server, "certs/same-key").await);
    }
    assert_eq!(
        seen[0]["private_key"], seen[1]["private_key"],
        "rotate_keys false keeps the key"
    );
    assert_ne!(seen[0]["serial_number"], seen[1]["serial_number"]);
    openssl_verify(
        tmp.path(),
        &root_pem,
        &int_pem,
        seen[1]["certificate"].as_str().unwrap(),
        clock(&server).await,
    );

    // A CA in use cannot go: the root signed the intermediate, the template uses it.
    let msg = kura_err(
        &server,
        "DeleteCertificateAuthority",
        json!({"Name": "root"}),
        "InvalidRequestException",
    )
    .await;
    assert!(msg.contains("issuing"), "{msg}");
    let msg = kura_err(
        &server,
        "DeleteCertificateAuthority",
        json!({"Name": "issuing"}),
        "InvalidRequestException",
    )
    .await;
    assert!(msg.contains("web"), "{msg}");
    ok_kura(&server, "DeleteCertificateTemplate", json!({"Name": "web"})).await;
    ok_kura(
        &server,
        "DeleteCertificateAuthority",
        json!({"Name": "issuing"}),
    )
    .await;
    ok_kura(
        &server,
        "DeleteCertificateAuthority",
        json!({"Name": "root"}),
    )
    .await;
    kura_err(
        &server,
        "DescribeCertificateAuthority",
        json!({"Name": "root"}),
        "ResourceNotFoundException",
    )
    .await;
    let log = server.log();
    assert!(
        !log.contains("PRIVATE KEY"),
        "a private key reached the log"
    );
}

/// The rotation's last error, once a failed attempt recorded one.
async fn failure_of(server: &Server, id: &str) -> String {
    let r = wait_rotation_settled(server, id, Duration::from_secs(60)).await;
    r["LastError"]
        .as_str()
        .unwrap_or_else(|| panic!("rotation of {id} did not fail: {r:#}"))
        .to_string()
}

#[tokio::test]
async fn each_template_rule_refuses_a_request_that_breaks_it_by_name() {
    if !have("openssl") {
        return;
    }
    let server = Server::start().await;
    ok_kura(
        &server,
        "CreateCertificateAuthority",
        json!({"Name": "short", "Type": "root", "Ttl": "100d", "KeyAlgorithm": "ED25519"}),
    )
    .await;
    ok_kura(
        &server,
        "CreateCertificateTemplate",
        json!({
            "Name": "narrow", "CertificateAuthority": "short", "Ttl": "10d", "MaxTtl": "200d",
            "AllowedDomains": ["svc.example.test", "web-*.example.test"], "KeyAlgorithm": "EC_P256"
        }),
    )
    .await;
    // Templates are judged when made, too.
    for (body, code, needle) in [
        (
            json!({"Name": "x", "CertificateAuthority": "absent", "AllowedDomains": ["a.test"]}),
            "ResourceNotFoundException",
            "absent",
        ),
        (
            json!({"Name": "x", "CertificateAuthority": "short", "AllowedDomains": []}),
            "InvalidParameterException",
            "AllowedDomains",
        ),
        (
            json!({"Name": "x", "CertificateAuthority": "short", "AllowedDomains": ["a.test"], "KeyUsages": ["email"]}),
            "InvalidParameterException",
            "KeyUsages",
        ),
        (
            json!({"Name": "x", "CertificateAuthority": "short", "AllowedDomains": ["a.test"], "Ttl": "20d", "MaxTtl": "10d"}),
            "InvalidParameterException",
            "MaxTtl",
        ),
        (
            json!({"Name": "x", "CertificateAuthority": "short", "AllowedDomains": ["a.test"], "KeyAlgorithm": "DSA"}),
            "InvalidParameterException",
            "KeyAlgorithm",
        ),
    ] {
        let msg = kura_err(&server, "CreateCertificateTemplate", body, code).await;
        assert!(msg.contains(needle), "{msg}");
    }
    let msg = kura_err(
        &server,
        "CreateCertificateAuthority",
        json!({"Name": "bad", "Type": "leaf"}),
        "InvalidParameterException",
    )
    .await;
    assert!(msg.contains("root or intermediate"), "{msg}");

    // An RSA key the template's KeyAlgorithm (EC_P256) does not allow.
    let rsa = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl genpkey");
    let rsa_key = String::from_utf8(rsa.stdout).unwrap();
    let c = server.client().await;
    let cases = [
        (
            "cn",
            json!({"common_name": "evil.example.org"}),
            "AllowedDomains",
        ),
        (
            "alt",
            json!({"common_name": "svc.example.test", "alt_names": ["web-1.other.test"]}),
            "AllowedDomains",
        ),
        (
            "ip",
            json!({"common_name": "web-01.example.test", "ip_sans": ["10.0.0.1"]}),
            "AllowIpSans",
        ),
        (
            "ttl",
            json!({"common_name": "svc.example.test", "ttl": "300d"}),
            "MaxTtl",
        ),
        (
            "key",
            json!({"common_name": "svc.example.test", "rotate_keys": false, "private_key": rsa_key}),
            "KeyAlgorithm",
        ),
        // Within MaxTtl, but past the CA's own expiry (IBM's rule).
        (
            "outlives",
            json!({"common_name": "svc.example.test", "ttl": "150d"}),
            "may not outlive its CA",
        ),
    ];
    for (name, mut value, rule) in cases {
        value["template"] = "narrow".into();
        let id = format!("certs/{name}");
        let arn = create_plain(&c, &id, &value.to_string()).await;
        server
            .raw(
                "RotateSecret",
                &rotate_body(&arn, &id, None).to_string(),
                SignMode::Root,
            )
            .await
            .assert_ok();
        let e = failure_of(&server, &id).await;
        assert!(e.contains(rule), "{name}: the failure names {rule:?}: {e}");
        let v = value_of(&server, &id).await;
        assert!(v.get("certificate").is_none(), "{name}: nothing issued");
    }
    // And the same request inside the rules is issued.
    let arn = create_plain(
        &c,
        "certs/fine",
        &json!({"template": "narrow", "common_name": "web-7.example.test"}).to_string(),
    )
    .await;
    server
        .raw(
            "RotateSecret",
            &rotate_body(&arn, "certs/fine", None).to_string(),
            SignMode::Root,
        )
        .await
        .assert_ok();
    wait_rotation_succeeded(&server, "certs/fine").await;
    let v = value_of(&server, "certs/fine").await;
    assert_eq!(v["issuer"], "short");
    assert_eq!(v["intermediate"], "", "issued by a root: no intermediate");
}

#[tokio::test]
async fn an_intermediate_whose_csr_an_external_root_signs_issues_after_its_import() {
    if !have("openssl") {
        return;
    }
    let server = Server::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pending = ok_kura(
        &server,
        "CreateCertificateAuthority",
        json!({"Name": "ext", "Type": "intermediate", "CommonName": "kura under an external root"}),
    )
    .await["CertificateAuthority"]
        .clone();
    assert_eq!(pending["Status"], "PendingCertificate");
    assert!(pending.get("Certificate").is_none());
    let csr = pending["Csr"]
        .as_str()
        .expect("a CSR for the external root");
    ok_kura(
        &server,
        "CreateCertificateTemplate",
        json!({"Name": "t", "CertificateAuthority": "ext", "AllowedDomains": [".example.test"]}),
    )
    .await;
    assert_eq!(
        get(&server, "/pki/ext/ca.pem").await.status(),
        404,
        "no certificate yet"
    );

    // The external root: openssl's own.
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "root.key",
        "-out",
        "ext-root.pem",
        "-subj",
        "/CN=External Root",
        "-days",
        "3650",
    ]);
    std::fs::write(dir.join("int.csr"), csr).unwrap();
    std::fs::write(dir.join("ca.ext"), "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "int.csr",
        "-CA",
        "ext-root.pem",
        "-CAkey",
        "root.key",
        "-CAcreateserial",
        "-days",
        "365",
        "-extfile",
        "ca.ext",
        "-out",
        "int.pem",
    ]);
    let root_pem = std::fs::read_to_string(dir.join("ext-root.pem")).unwrap();
    let int_pem = std::fs::read_to_string(dir.join("int.pem")).unwrap();

    let msg = kura_err(
        &server,
        "ImportCertificateAuthorityCertificate",
        json!({"Name": "ext", "Certificate": root_pem}),
        "InvalidParameterException",
    )
    .await;
    assert!(msg.contains("not for this CA's key"), "{msg}");
    let done = ok_kura(
        &server,
        "ImportCertificateAuthorityCertificate",
        json!({"Name": "ext", "Certificate": int_pem}),
    )
    .await;
    assert_eq!(done["CertificateAuthority"]["Status"], "Active");
    assert!(done["CertificateAuthority"].get("Csr").is_none());
    kura_err(
        &server,
        "ImportCertificateAuthorityCertificate",
        json!({"Name": "ext", "Certificate": int_pem}),
        "InvalidRequestException",
    )
    .await;
    assert_eq!(
        get(&server, "/pki/ext/ca.pem")
            .await
            .text()
            .await
            .unwrap()
            .trim(),
        int_pem.trim()
    );

    let c = server.client().await;
    let arn = create_plain(
        &c,
        "certs/ext",
        &json!({"template": "t", "common_name": "a.example.test"}).to_string(),
    )
    .await;
    server
        .raw(
            "RotateSecret",
            &rotate_body(&arn, "certs/ext", None).to_string(),
            SignMode::Root,
        )
        .await
        .assert_ok();
    wait_rotation_succeeded(&server, "certs/ext").await;
    let v = value_of(&server, "certs/ext").await;
    let now = chrono::Utc::now().timestamp();
    openssl_verify(
        dir,
        &root_pem,
        v["intermediate"].as_str().unwrap(),
        v["certificate"].as_str().unwrap(),
        now,
    );
    serve_and_connect(
        &root_pem,
        v["intermediate"].as_str().unwrap(),
        v["certificate"].as_str().unwrap(),
        v["private_key"].as_str().unwrap(),
        "a.example.test",
        now,
    )
    .await;
    // The CA's key moves with the default key's rotation (its data key re-wrapped) and still
    // signs afterwards.
    ok_kura(&server, "RotateKey", json!({})).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let k = ok_kura(
            &server,
            "DescribeKey",
            json!({"KeyId": "alias/kura/default"}),
        )
        .await;
        let r = &k["KeyMetadata"]["RewrapStatus"];
        if r["State"] == "Complete" && r["Remaining"] == 0 {
            assert!(
                r["Done"].as_i64().unwrap() >= 1,
                "the CA key was re-wrapped: {r}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "re-wrap did not finish: {k}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server
        .raw(
            "RotateSecret",
            &rotate_body(&arn, "certs/ext", None).to_string(),
            SignMode::Root,
        )
        .await
        .assert_ok();
    wait_rotation_succeeded(&server, "certs/ext").await;
    let again = value_of(&server, "certs/ext").await;
    assert_ne!(again["serial_number"], v["serial_number"]);
    openssl_verify(
        dir,
        &root_pem,
        &int_pem,
        again["certificate"].as_str().unwrap(),
        now,
    );
    // The CRL is signed by the imported intermediate: openssl checks it against its certificate.
    let der = get(&server, "/pki/ext/crl").await.bytes().await.unwrap();
    std::fs::write(dir.join("ext.crl"), &der).unwrap();
    run(&[
        "crl", "-inform", "DER", "-in", "ext.crl", "-CAfile", "int.pem", "-noout",
    ]);
}
