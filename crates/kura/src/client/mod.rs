//! The client side of the `kura` binary: signed calls to a kura server (or anything speaking
//! the AWS Secrets Manager JSON protocol), configured as the AWS CLI is.

pub mod settings;

use std::path::Path;

use kura_iam::sigv4;
pub use settings::{ConnectOptions, Settings};

/// Exit codes of the client commands (documented in `kura --help`).
pub mod exit {
    /// A server error, or anything not listed below.
    pub const OTHER: u8 = 1;
    /// Bad usage or input: the command line, a file, or a request the server found invalid.
    pub const USAGE: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    /// The credentials were refused, or the caller is not allowed.
    pub const DENIED: u8 = 4;
    pub const UNREACHABLE: u8 = 5;
}

/// Why a client command failed.
#[derive(Debug)]
pub enum ClientError {
    /// Bad input on our side (arguments, files, configuration).
    Usage(String),
    /// The server answered with an error.
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer: connection refused, DNS, TLS, timeout.
    Unreachable(String),
    /// Anything else (an answer that is not what was expected).
    Other(String),
    /// `kura run`'s command could not be started: the shell's exit code (126, 127) and why.
    Child(u8, String),
}

impl ClientError {
    /// The server's error with its message rewritten by `explain(code, message)` (what to do
    /// about it); any other error as it is.
    pub fn explained(self, explain: impl FnOnce(&str, String) -> String) -> ClientError {
        match self {
            ClientError::Api {
                status,
                code,
                message,
            } => ClientError::Api {
                message: explain(&code, message),
                status,
                code,
            },
            other => other,
        }
    }

    /// The server's error with `context` put before its message (which secret, which
    /// server); any other error as it is.
    pub fn prefixed(self, context: &str) -> ClientError {
        self.explained(|_, message| format!("{context}{message}"))
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Usage(_) => exit::USAGE,
            ClientError::Unreachable(_) => exit::UNREACHABLE,
            ClientError::Other(_) => exit::OTHER,
            ClientError::Child(code, _) => *code,
            ClientError::Api { code, .. } => code_exit(code),
        }
    }
}

/// The exit code for an AWS error code.
pub fn code_exit(code: &str) -> u8 {
    match code {
        "ValidationException"
        | "InvalidParameterException"
        | "InvalidRequestException"
        | "SerializationException"
        | "MalformedPolicyDocumentException"
        | "InvalidNextTokenException" => exit::USAGE,
        "ResourceNotFoundException" => exit::NOT_FOUND,
        c if is_denied(c) => exit::DENIED,
        _ => exit::OTHER,
    }
}

/// Codes that mean the caller was not allowed, or not recognised.
pub fn is_denied(code: &str) -> bool {
    matches!(
        code,
        "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignatureException"
            | "MissingAuthenticationTokenException"
            | "ExpiredTokenException"
    )
}

/// The HTTP client: when `AWS_CA_BUNDLE` names a PEM file, it trusts the certificates in it
/// and no others (as the AWS CLI does); else the system's roots.
pub fn http_client() -> Result<reqwest::Client, String> {
    // The user agent lands in the audit trail: say which client made a request.
    let mut builder = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .user_agent(concat!("kura/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = std::env::var_os("AWS_CA_BUNDLE").filter(|p| !p.is_empty()) {
        let shown = Path::new(&path).display().to_string();
        let pem =
            std::fs::read(&path).map_err(|e| format!("cannot read AWS_CA_BUNDLE {shown}: {e}"))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("AWS_CA_BUNDLE {shown} is not a PEM bundle: {e}"))?;
        if certs.is_empty() {
            return Err(format!(
                "AWS_CA_BUNDLE {shown} holds no PEM CERTIFICATE block"
            ));
        }
        builder = builder.tls_certs_only(certs);
    }
    builder
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))
}

/// A configured connection to one server.
pub struct Client {
    pub settings: Settings,
    http: reqwest::Client,
    url: reqwest::Url,
    host: String,
}

impl Client {
    /// Resolves the configuration from `opts` and the process's environment.
    pub fn connect(opts: &ConnectOptions) -> Result<Client, ClientError> {
        let env = |name: &str| std::env::var(name).ok();
        let settings = settings::resolve(opts, &env, Path::new(settings::ROOT_CREDENTIALS))
            .map_err(ClientError::Usage)?;
        Client::new(settings)
    }

    pub fn new(settings: Settings) -> Result<Client, ClientError> {
        let endpoint = &settings.endpoint;
        let bad = |why: String| {
            // `127.0.0.1:8200` or `localhost:8200` without a scheme is the usual slip.
            let hint = if endpoint.contains("://") {
                String::new()
            } else {
                format!("; write it as http://{endpoint} or https://{endpoint}")
            };
            ClientError::Usage(format!(
                "the endpoint {endpoint:?} (from {}) {why}{hint}",
                settings.endpoint_source
            ))
        };
        let url = reqwest::Url::parse(endpoint).map_err(|e| bad(format!("is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("is not an http:// or https:// URL".into()));
        }
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => return Err(bad("has no host".into())),
        };
        let http = http_client().map_err(ClientError::Usage)?;
        Ok(Client {
            settings,
            http,
            url,
            host,
        })
    }

    /// One signed call; `target` as in `X-Amz-Target` (`secretsmanager.GetSecretValue`,
    /// `Kura.CreateUser`). The answer's JSON, or the error.
    pub async fn call_raw(
        &self,
        target: &str,
        body: String,
    ) -> Result<serde_json::Value, ClientError> {
        let creds = &self.settings.credentials;
        let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let content_type = "application/x-amz-json-1.1";
        let mut headers = vec![
            ("host", self.host.as_str()),
            ("x-amz-date", amz_date.as_str()),
            ("x-amz-target", target),
            ("content-type", content_type),
        ];
        if let Some(token) = &creds.session_token {
            headers.push(("x-amz-security-token", token.as_str()));
        }
        let request = sigv4::Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: body.as_bytes(),
        };
        let authorization = sigv4::authorization_header(
            &request,
            &creds.access_key_id,
            &creds.secret_access_key,
            &self.settings.region,
            "secretsmanager",
            &amz_date,
        )
        .map_err(|e| ClientError::Other(format!("cannot sign the request: {e}")))?;
        let mut builder = self.http.post(self.url.clone());
        for (name, value) in headers.iter().filter(|(n, _)| *n != "host") {
            builder = builder.header(*name, *value);
        }
        let resp = builder
            .header("authorization", authorization)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                ClientError::Unreachable(format!(
                    "cannot reach {} (from {}): {}; is the server running there?",
                    self.settings.endpoint,
                    self.settings.endpoint_source,
                    error_chain(&e)
                ))
            })?;
        answer(resp).await
    }

    /// One signed call with a JSON body.
    pub async fn call(
        &self,
        target: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        self.call_raw(target, body.to_string()).await
    }

    /// The server's message with what to do, for errors any command may meet (refusals, a
    /// sealed server); `None` for the others, which each command explains itself.
    pub fn general_hint(&self, code: &str, message: &str) -> Option<String> {
        // The server knows the key, so "does not know" would mislead.
        if code == "UnrecognizedClientException" && message.contains("is expired") {
            return Some(format!(
                "{message} — access key {} (from {}) has expired: create a new one with `kura user create-key`",
                self.settings.credentials.access_key_id, self.settings.credentials_source
            ));
        }
        if is_denied(code) {
            return Some(format!("{message} — {}", self.denied_hint(code)));
        }
        (code == "ServiceUnavailable")
            .then(|| format!("{message}; if the server is sealed, `kura operator unseal` opens it"))
    }

    /// `e` with [`general_hint`](Self::general_hint)'s advice when it has some.
    pub fn hinted(&self, e: ClientError) -> ClientError {
        e.explained(|code, m| self.general_hint(code, &m).unwrap_or(m))
    }

    /// Explains a refusal: which key was used, from where, and what to check.
    pub fn denied_hint(&self, code: &str) -> String {
        let creds = &self.settings;
        let who = format!(
            "access key {} (from {})",
            creds.credentials.access_key_id, creds.credentials_source
        );
        match code {
            "AccessDeniedException" => {
                format!("{who} is not allowed this; ask an administrator for a policy allowing it")
            }
            "UnrecognizedClientException" => format!(
                "{} does not know {who}: use another profile (--profile) or key",
                creds.endpoint
            ),
            _ => format!(
                "the signature by {who} was refused: check its secret key and this machine's clock"
            ),
        }
    }
}

/// An error with its causes (reqwest's top-level message alone says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// A kura answer as JSON; an error answer as its code and message.
pub async fn answer(resp: reqwest::Response) -> Result<serde_json::Value, ClientError> {
    let status = resp.status();
    let text = resp
        .text()
        .await
        .map_err(|e| ClientError::Unreachable(format!("reading the answer: {e}")))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    if status.is_success() {
        return Ok(json);
    }
    let code = json["__type"]
        .as_str()
        // `com.amazonaws...#Code` in some AWS answers.
        .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
        .unwrap_or_else(|| format!("HTTP {}", status.as_u16()));
    let message = match json["message"]
        .as_str()
        .or_else(|| json["Message"].as_str())
    {
        Some(m) => m.to_string(),
        // Not kura's answer (a proxy's page, say): its start says whose it is.
        None => match json.as_str().map(str::trim).filter(|t| !t.is_empty()) {
            Some(text) => format!(
                "the answer is not from a kura server? It begins: {:?}",
                text.chars().take(120).collect::<String>()
            ),
            None => "(no message)".to_string(),
        },
    };
    Err(ClientError::Api {
        status: status.as_u16(),
        code,
        message,
    })
}
