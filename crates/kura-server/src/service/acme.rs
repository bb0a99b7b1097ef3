//! The `kura-acme-certificate` rotation's order (RFC 8555, through instant-acme): the account,
//! kept sealed per directory and email like a CA's key; the challenges, `http-01` answered by
//! kura itself at `GET /.well-known/acme-challenge/<token>` and `dns-01` by the secret's
//! `dns_provider` function; the CSR (kura-pki) and the issued chain. Nothing here quotes a
//! private key: errors name fields, names and what the ACME server said.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType,
    HttpClient, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use kura_core::{Error, Result};
use kura_pki::{KeyAlgorithm, PrivateKey};
use kura_rotation::function::{
    AcmeChallenge, AcmeRequest, IssuedCertificate, RotationFunction, StepContext,
};
use kura_store::AcmeAccountRecord;
use zeroize::Zeroizing;

use super::Service;

/// How long one request to the ACME server may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long kura waits for the server to validate the challenges, then to issue.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(40);

pub(crate) fn account_context(directory_url: &str, email: &str) -> Vec<u8> {
    format!("kura/acme-account/{directory_url}\n{email}").into_bytes()
}

/// The `http-01` tokens of the orders in flight on this node: token → key authorization.
#[derive(Default)]
pub(crate) struct Http01Tokens(Mutex<HashMap<String, String>>);

impl Http01Tokens {
    fn publish(&self, token: &str, key_authorization: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(token.to_string(), key_authorization.to_string());
        }
    }

    fn withdraw(&self, token: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(token);
        }
    }

    fn answer(&self, token: &str) -> Option<String> {
        self.0.lock().ok()?.get(token).cloned()
    }
}

/// Withdraws an order's http-01 tokens when it ends, also when a step's timeout drops it.
struct Published<'a> {
    tokens: &'a Http01Tokens,
    published: Vec<String>,
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        for t in &self.published {
            self.tokens.withdraw(t);
        }
    }
}

/// instant-acme's HTTP client on reqwest (already in the build, on aws-lc-rs), trusting only
/// `directory_ca` when the secret names one.
struct AcmeHttp(reqwest::Client);

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: http::Request<BodyWrapper<bytes::Bytes>>,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<BytesResponse, instant_acme::Error>> + Send>>
    {
        let client = self.0.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = match http_body_util::BodyExt::collect(body).await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            let req = reqwest::Request::try_from(http::Request::from_parts(parts, body))
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let rsp = client
                .execute(req)
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            Ok(BytesResponse::from(http::Response::<reqwest::Body>::from(
                rsp,
            )))
        })
    }
}

fn http_client(directory_ca: Option<&str>) -> Result<Box<dyn HttpClient>> {
    let mut b = reqwest::Client::builder().timeout(REQUEST_TIMEOUT);
    if let Some(pem) = directory_ca {
        let ca = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|_| {
            Error::invalid_parameter(
                "directory_ca is not a PEM certificate (-----BEGIN CERTIFICATE----- ...).",
            )
        })?;
        b = b.tls_certs_only([ca]);
    }
    let client = b
        .build()
        .map_err(|e| Error::internal(format!("building the ACME client: {e}")))?;
    Ok(Box::new(AcmeHttp(client)))
}

/// An error and its causes on one line (reqwest's own text leaves out why a connection failed).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// What the ACME server at `url` said while kura was `doing` something.
fn acme_error(url: &str, doing: &str) -> impl Fn(instant_acme::Error) -> Error {
    move |e| {
        Error::invalid_request(format!(
            "The ACME server at {url} failed {doing}: {}",
            chain(&e)
        ))
    }
}

/// A PEM chain as issued: the certificate, then the rest (the intermediates).
fn split_chain(pem: &str) -> (String, String) {
    const END: &str = "-----END CERTIFICATE-----";
    match pem.find(END) {
        Some(i) => {
            let cut = i + END.len();
            let leaf = format!("{}\n", pem[..cut].trim_start());
            let rest = pem[cut..].trim_start();
            (leaf, rest.to_string())
        }
        None => (pem.to_string(), String::new()),
    }
}

/// A dns-01 TXT record the provider was asked to set.
struct TxtRecord {
    name: String,
    value: String,
}

fn dns_body(action: &str, r: &TxtRecord) -> String {
    serde_json::json!({"Action": action, "Name": r.name, "Value": r.value}).to_string()
}

impl Service {
    /// `GET /.well-known/acme-challenge/<token>`: the key authorization of a token of an order
    /// in flight on this node.
    pub fn acme_http01(&self, token: &str) -> Option<String> {
        self.acme_tokens.answer(token)
    }

    /// The secret's `dns_provider`: a command or webhook function.
    async fn dns_provider(&self, name: &str) -> Result<Box<dyn RotationFunction>> {
        let bad = |why: String| {
            Error::invalid_parameter(format!(
                "dns_provider {name:?} {why}: name a command or webhook rotation function (Kura.CreateRotationFunction) that sets and removes TXT records."
            ))
        };
        let Some(rec) = self.store.rotation_function(name).await? else {
            return Err(bad(if name.starts_with("kura-") {
                "is a built-in function".into()
            } else {
                "does not exist".into()
            }));
        };
        if rec.kind != "command" && rec.kind != "webhook" {
            return Err(bad(format!("is a {} function", rec.kind)));
        }
        self.load_function(name).await
    }

    async fn call_provider(
        ctx: &dyn StepContext,
        provider: &dyn RotationFunction,
        action: &str,
        r: &TxtRecord,
    ) -> Result<()> {
        let name = &provider.settings().name;
        let Some(call) = provider.call(ctx, dns_body(action, r)) else {
            return Err(Error::invalid_parameter(format!(
                "dns_provider {name} cannot be called with a DNS record."
            )));
        };
        call.await.map_err(|f| {
            Error::invalid_request(format!(
                "dns_provider {name} failed to {action} the TXT record {}: {}",
                r.name, f.text
            ))
        })
    }

    /// The ACME account of `directory_url` and `email`: the kept one, or a new one kept now.
    async fn acme_account(
        &self,
        directory_ca: Option<&str>,
        url: &str,
        email: &str,
    ) -> Result<Account> {
        if let Some(rec) = self.store.acme_account(url, email).await? {
            return self.open_acme_account(directory_ca, &rec).await;
        }
        let contact = format!("mailto:{email}");
        let (account, credentials) = Account::builder_with_http(http_client(directory_ca)?)
            .create(
                &NewAccount {
                    contact: &[&contact],
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                url.to_string(),
                None,
            )
            .await
            .map_err(acme_error(url, "to create an account"))?;
        let json = Zeroizing::new(
            serde_json::to_vec(&credentials)
                .map_err(|e| Error::internal(format!("encoding ACME credentials: {e}")))?,
        );
        let rec = AcmeAccountRecord {
            directory_url: url.to_string(),
            email: email.to_string(),
            sealed_credentials: self.seal_internal(&account_context(url, email), &json)?,
            created_at: self.clock.now(),
        };
        if self.store.insert_acme_account(&rec).await? {
            tracing::info!(directory = %url, account = %account.id(), "ACME account created");
            return Ok(account);
        }
        // Another rotation kept one first: use that one, as every later order will.
        let rec = self
            .store
            .acme_account(url, email)
            .await?
            .ok_or_else(|| Error::internal("an ACME account vanished after it was kept"))?;
        self.open_acme_account(directory_ca, &rec).await
    }

    async fn open_acme_account(
        &self,
        directory_ca: Option<&str>,
        rec: &AcmeAccountRecord,
    ) -> Result<Account> {
        let sealed = &rec.sealed_credentials;
        self.ready_version(&sealed.key_name, sealed.key_version)
            .await?;
        let json = self.open_internal(&account_context(&rec.directory_url, &rec.email), sealed)?;
        let credentials: AccountCredentials = serde_json::from_slice(&json).map_err(|_| {
            Error::internal(format!(
                "the sealed ACME account of {} at {} is damaged",
                rec.email, rec.directory_url
            ))
        })?;
        Account::builder_with_http(http_client(directory_ca)?)
            .from_credentials(credentials)
            .await
            .map_err(acme_error(&rec.directory_url, "to load the account"))
    }

    /// Orders a certificate for the rotated secret (the kura-acme-certificate rotation's
    /// createSecret). TXT records set for it are removed again whatever the outcome.
    pub(crate) async fn order_acme(
        &self,
        ctx: &dyn StepContext,
        mut req: AcmeRequest<'_>,
    ) -> Result<IssuedCertificate> {
        let url = req.directory_url;
        match reqwest::Url::parse(url) {
            Ok(u) if u.scheme() == "https" && u.host().is_some() => {}
            _ => {
                return Err(Error::invalid_parameter(format!(
                    "directory_url {url:?} must be the https:// URL of an ACME directory, e.g. https://acme-v02.api.letsencrypt.org/directory."
                )));
            }
        }
        let email = req.email;
        if !email.contains('@') || email.chars().any(|c| c.is_whitespace() || c == ',') {
            return Err(Error::invalid_parameter(format!(
                "email {email:?} must be an email address: the ACME account's contact."
            )));
        }
        let provider = match (req.challenge, req.dns_provider) {
            (AcmeChallenge::Dns01, Some(name)) => Some(self.dns_provider(name).await?),
            (AcmeChallenge::Dns01, None) => {
                return Err(Error::invalid_parameter(
                    "dns-01 needs dns_provider: a command or webhook rotation function.",
                ));
            }
            (AcmeChallenge::Http01, _) => None,
        };
        // Checked before anything is ordered: a key that cannot sign a CSR fails here.
        let (key, key_algorithm, csr) = kura_pki::csr_for(
            req.names,
            req.private_key.take().map(PrivateKey),
            KeyAlgorithm::EcdsaP256,
        )?;
        let account = self.acme_account(req.directory_ca, url, email).await?;
        let mut records = Vec::new();
        let mut published = Published {
            tokens: &self.acme_tokens,
            published: Vec::new(),
        };
        let ordered = self
            .acme_order(
                ctx,
                &account,
                &req,
                provider.as_deref(),
                &csr,
                &mut records,
                &mut published,
            )
            .await;
        drop(published);
        if let Some(p) = &provider {
            for r in &records {
                if let Err(e) = Self::call_provider(ctx, p.as_ref(), "remove", r).await {
                    tracing::warn!(record = %r.name, detail = %e.message, "cannot remove an ACME TXT record");
                }
            }
        }
        let chain_pem = ordered?;
        let (certificate, intermediate) = split_chain(&chain_pem);
        let info =
            kura_pki::certificate_info("the certificate the ACME server issued", &certificate)?;
        Ok(IssuedCertificate {
            certificate,
            private_key: key.0,
            intermediate,
            issuer: info.issuer,
            serial_number: info.serial,
            expiration_date: kura_pki::rfc3339(info.not_after),
            key_algorithm: key_algorithm.name().to_string(),
        })
    }

    /// One order: its challenges answered, then finalized with `csr`; the issued chain (PEM).
    #[allow(clippy::too_many_arguments)]
    async fn acme_order(
        &self,
        ctx: &dyn StepContext,
        account: &Account,
        req: &AcmeRequest<'_>,
        provider: Option<&dyn RotationFunction>,
        csr: &[u8],
        records: &mut Vec<TxtRecord>,
        published: &mut Published<'_>,
    ) -> Result<String> {
        let url = req.directory_url;
        let identifiers: Vec<Identifier> = req
            .names
            .iter()
            .map(|n| Identifier::Dns(n.clone()))
            .collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(acme_error(url, "to accept the order"))?;
        let kind = match req.challenge {
            AcmeChallenge::Dns01 => ChallengeType::Dns01,
            AcmeChallenge::Http01 => ChallengeType::Http01,
        };
        let kind_name = match req.challenge {
            AcmeChallenge::Dns01 => "dns-01",
            AcmeChallenge::Http01 => "http-01",
        };
        let mut authorizations = order.authorizations();
        while let Some(a) = authorizations.next().await {
            let mut a = a.map_err(acme_error(url, "to show an authorization"))?;
            let name = a.identifier().to_string();
            match a.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(Error::invalid_request(format!(
                        "The ACME server at {url} holds the authorization for {name} {other:?}; it cannot be validated again."
                    )));
                }
            }
            let mut challenge = a.challenge(kind.clone()).ok_or_else(|| {
                Error::invalid_request(format!(
                    "The ACME server at {url} offers no {kind_name} challenge for {name}: use another challenge."
                ))
            })?;
            let key_authorization = challenge.key_authorization();
            match provider {
                Some(p) => {
                    // A wildcard's record is its base name's.
                    let base = name.trim_start_matches("*.");
                    let r = TxtRecord {
                        name: format!("_acme-challenge.{base}"),
                        value: key_authorization.dns_value(),
                    };
                    Self::call_provider(ctx, p, "set", &r).await?;
                    records.push(r);
                }
                None => {
                    published
                        .tokens
                        .publish(&challenge.token, key_authorization.as_str());
                    published.published.push(challenge.token.clone());
                }
            }
            challenge
                .set_ready()
                .await
                .map_err(acme_error(url, "to start validating"))?;
        }
        let retries = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(VALIDATION_TIMEOUT);
        let status = order
            .poll_ready(&retries)
            .await
            .map_err(acme_error(url, "to validate the order"))?;
        if status != OrderStatus::Ready {
            return Err(Error::invalid_request(format!(
                "The ACME server at {url} did not validate the order ({status:?}){}",
                self.challenge_errors(&mut order).await
            )));
        }
        order
            .finalize_csr(csr)
            .await
            .map_err(acme_error(url, "to finalize the order"))?;
        order
            .poll_certificate(&retries)
            .await
            .map_err(acme_error(url, "to issue the certificate"))
    }

    /// Why the server refused the challenges, as it said it (": name: problem; …").
    async fn challenge_errors(&self, order: &mut instant_acme::Order) -> String {
        let mut out = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(Ok(mut a)) = authorizations.next().await {
            let name = a.identifier().to_string();
            let Ok(state) = a.refresh().await else {
                continue;
            };
            for c in &state.challenges {
                if let Some(e) = &c.error {
                    out.push(format!("{name}: {e}"));
                }
            }
        }
        if out.is_empty() {
            String::new()
        } else {
            format!(": {}", out.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_splits_into_the_certificate_and_its_intermediates() {
        let a = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n";
        let b = "-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n";
        let (leaf, rest) = split_chain(&format!("{a}\n{b}"));
        assert_eq!(leaf, a);
        assert_eq!(rest, b);
        let (leaf, rest) = split_chain(a);
        assert_eq!(leaf, a);
        assert_eq!(rest, "");
    }

    #[test]
    fn the_dns_provider_is_told_the_action_the_name_and_the_value() {
        let r = TxtRecord {
            name: "_acme-challenge.example.test".into(),
            value: "abc".into(),
        };
        let v: serde_json::Value = serde_json::from_str(&dns_body("set", &r)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"Action": "set", "Name": "_acme-challenge.example.test", "Value": "abc"})
        );
    }
}
