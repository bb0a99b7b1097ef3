//! TLS for test servers: CAs made per test with rcgen, the server and client certificates they
//! sign, and clients (reqwest, the AWS SDK, a bare rustls connection) that trust them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};

/// A root CA and an intermediate under it; server certificates are issued by the
/// intermediate, so a server must send its chain for clients that trust only the root.
pub struct TestCa {
    root: CertifiedIssuer<'static, KeyPair>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, PEM. `chain` is the certificate followed by its intermediate.
#[derive(Clone)]
pub struct Issued {
    pub chain: String,
    pub key: String,
    /// The leaf certificate, DER (what a client sees first in the handshake).
    pub der: Vec<u8>,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let root = CertifiedIssuer::self_signed(
            ca_params(&format!("{name} root")),
            KeyPair::generate().expect("CA key"),
        )
        .expect("self-signed root");
        let intermediate = CertifiedIssuer::signed_by(
            ca_params(&format!("{name} intermediate")),
            KeyPair::generate().expect("intermediate key"),
            &root,
        )
        .expect("intermediate");
        TestCa { root, intermediate }
    }

    /// The root certificate, PEM: what clients trust (`AWS_CA_BUNDLE`).
    pub fn pem(&self) -> String {
        self.root.pem()
    }

    /// A server certificate for `localhost` and 127.0.0.1 with this serial number.
    pub fn server_cert(&self, serial: u64) -> Issued {
        let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "kura test server");
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.intermediate)
            .expect("server certificate");
        Issued {
            chain: format!("{}{}", cert.pem(), self.intermediate.pem()),
            key: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// A client certificate for `name`, issued by the root directly.
    pub fn client_cert(&self, name: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("client key");
        let cert = params
            .signed_by(&key, &self.root)
            .expect("client certificate");
        Issued {
            chain: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

/// Writes `issued` as `DIR/server.pem` and `DIR/server.key` (replacing each file in one
/// rename, as a certificate tool would) and returns the two paths.
pub fn write_pair(dir: &Path, issued: &Issued) -> (PathBuf, PathBuf) {
    let cert = dir.join("server.pem");
    let key = dir.join("server.key");
    replace_file(&cert, issued.chain.as_bytes());
    replace_file(&key, issued.key.as_bytes());
    (cert, key)
}

pub fn replace_file(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, bytes).expect("write TLS file");
    std::fs::rename(&tmp, path).expect("rename TLS file");
}

/// How a test's clients reach a TLS server: the CA they trust, and the certificate they
/// present when the server asks for one.
#[derive(Clone)]
pub struct ClientTls {
    pub ca_pem: String,
    pub identity: Option<Issued>,
}

impl ClientTls {
    pub fn trusting(ca: &TestCa) -> ClientTls {
        ClientTls {
            ca_pem: ca.pem(),
            identity: None,
        }
    }

    pub fn with_identity(mut self, identity: Issued) -> ClientTls {
        self.identity = Some(identity);
        self
    }

    /// A reqwest client that trusts only the test CA and presents the identity, if any.
    pub fn reqwest(&self) -> reqwest::Client {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA PEM");
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(30))
            .tls_certs_only([ca]);
        if let Some(id) = &self.identity {
            let pem = format!("{}{}", id.chain, id.key);
            builder =
                builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
        }
        builder.build().expect("build reqwest client")
    }

    /// The AWS SDK's own HTTPS client, trusting only the test CA (the Rust SDK does not read
    /// `AWS_CA_BUNDLE`; this is its equivalent).
    pub fn sdk_http_client(&self) -> aws_sdk_secretsmanager::config::SharedHttpClient {
        use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider};
        let context = TlsContext::builder()
            .with_trust_store(TrustStore::empty().with_pem_certificate(self.ca_pem.as_bytes()))
            .build()
            .expect("TLS context");
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(rustls_provider::CryptoMode::AwsLc))
            .tls_context(context)
            .build_https()
    }

    /// A bare rustls client configuration with the same trust and identity.
    pub fn rustls(&self) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.expect("CA PEM")).expect("add CA");
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some(id) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_slice_iter(id.chain.as_bytes())
                        .collect::<Result<Vec<_>, _>>()
                        .expect("client chain"),
                    PrivateKeyDer::from_pem_slice(id.key.as_bytes()).expect("client key"),
                )
                .expect("client auth"),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}
