//! SigV4 authentication: from a signed request to a [`Principal`].

use axum::http::{HeaderMap, Method, Uri};
use kura_core::{Error, ErrorCode, Result};
use kura_iam::sigv4::{self, SigV4Error, SigningKeyCache};

use crate::service::{Principal, Service};

pub const SERVICE_NAME: &str = "secretsmanager";
const MAX_SKEW_MINUTES: i64 = 15;

fn sig_err(e: SigV4Error) -> Error {
    let code = match e.code() {
        "MissingAuthenticationTokenException" => ErrorCode::MissingAuthenticationToken,
        "IncompleteSignatureException" => ErrorCode::IncompleteSignature,
        _ => ErrorCode::InvalidSignature,
    };
    Error::new(code, e.to_string())
}

fn unrecognized() -> Error {
    Error::new(
        ErrorCode::UnrecognizedClient,
        "The security token included in the request is invalid.",
    )
}

pub struct Incoming<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Authenticates a request signed for `service` (the credential scope's service name).
pub async fn authenticate(
    svc: &Service,
    cache: &SigningKeyCache,
    req: Incoming<'_>,
    service: &str,
) -> Result<Principal> {
    let Some(auth_header) = req.headers.get("authorization") else {
        return Err(Error::new(
            ErrorCode::MissingAuthenticationToken,
            format!(
                "Missing Authentication Token: sign the request with AWS Signature Version 4 (service {service})."
            ),
        ));
    };
    let auth_header = auth_header.to_str().map_err(|_| {
        sig_err(SigV4Error::Incomplete(
            "Authorization header is not ASCII.".into(),
        ))
    })?;
    let auth = sigv4::parse_authorization(auth_header).map_err(sig_err)?;

    let record = svc
        .store()
        .find_access_key(&auth.access_key_id)
        .await?
        .ok_or_else(unrecognized)?;
    if !record.active {
        return Err(unrecognized());
    }
    if record.expires_at.is_some_and(|t| t <= svc.clock.now()) {
        return Err(Error::new(
            ErrorCode::UnrecognizedClient,
            "The security token included in the request is expired.",
        ));
    }

    // Every header, even one whose value is not text: the check that x-amz-* headers are
    // signed must see all of them (such a value then simply fails the signature).
    let values: Vec<(&str, std::borrow::Cow<'_, str>)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v.as_bytes())))
        .collect();
    let headers: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_ref())).collect();
    // HTTP/2 carries the host in :authority, not in a Host header.
    let authority;
    let mut headers = headers;
    if !req.headers.contains_key("host")
        && let Some(a) = req.uri.authority()
    {
        authority = a.as_str().to_string();
        headers.push(("host", authority.as_str()));
    }
    let request = sigv4::Request {
        method: req.method.as_str(),
        path: req.uri.path(),
        query: req.uri.query().unwrap_or(""),
        headers: &headers,
        body: req.body,
    };

    let cached = cache.get(&auth.access_key_id, &auth.date, &auth.region, &auth.service);
    let first_today = cached.is_none();
    let key = match cached {
        Some(k) => k,
        None => {
            let secret = svc.open_access_key(&record.access_key_id, &record.sealed_secret)?;
            let k = std::sync::Arc::new(sigv4::derive_signing_key(
                &secret,
                &auth.date,
                &auth.region,
                &auth.service,
            ));
            cache.insert(
                &auth.access_key_id,
                &auth.date,
                &auth.region,
                &auth.service,
                k.clone(),
            );
            k
        }
    };
    // Signatures are checked against real time, whatever clock the service runs on.
    sigv4::verify(
        &request,
        &auth,
        &key,
        service,
        chrono::Utc::now(),
        chrono::Duration::minutes(MAX_SKEW_MINUTES),
    )
    .map_err(sig_err)?;
    // Only once the signature holds: whether root is disabled is nobody else's business.
    svc.check_root_enabled(&record.user_name).await?;
    // LastUsedDate at day granularity: the signing key is derived once per key and day.
    if first_today
        && let Err(e) = svc
            .store()
            .touch_access_key(&record.access_key_id, svc.clock.now().start_of_day())
            .await
    {
        tracing::warn!(detail = ?e, "could not record an access key's last use");
    }
    Ok(principal_of(record))
}

/// The console's sign-in: the user behind `access_key_id` if `secret` is its secret key, checked
/// as SigV4 checks a signature (the sealed secret opened, compared in constant time, root's keys
/// refused while root is disabled). Every failure is the same error, so a guesser learns
/// nothing of which part was wrong. Short-lived keys (a rotation step's) cannot sign in, nor
/// can a user's key past its expiry.
pub async fn sign_in(svc: &Service, access_key_id: &str, secret: &str) -> Result<Principal> {
    let wrong = || {
        Error::new(
            ErrorCode::UnrecognizedClient,
            "The access key id or the secret key is wrong, or the key is inactive.",
        )
    };
    let record = svc
        .store()
        .find_access_key(access_key_id)
        .await?
        .filter(|r| {
            r.active
                && r.scope_secret_id.is_none()
                && r.expires_at.is_none_or(|t| t > svc.clock.now())
        })
        .ok_or_else(wrong)?;
    let stored = svc.open_access_key(&record.access_key_id, &record.sealed_secret)?;
    if aws_lc_rs::constant_time::verify_slices_are_equal(stored.as_bytes(), secret.as_bytes())
        .is_err()
    {
        return Err(wrong());
    }
    svc.check_root_enabled(&record.user_name).await?;
    Ok(principal_of(record))
}

/// Whether a console session's key still works: active, not expired, and root not disabled if
/// it is root's.
pub async fn key_still_valid(svc: &Service, p: &Principal) -> bool {
    let active = matches!(
        svc.store().find_access_key(&p.access_key_id).await,
        Ok(Some(r)) if r.active && r.expires_at.is_none_or(|t| t > svc.clock.now())
    );
    active && svc.check_root_enabled(&p.user_name).await.is_ok()
}

/// The principal an access key signs as.
fn principal_of(record: kura_store::AccessKeyRecord) -> Principal {
    let user_id = caller_user_id(&record);
    Principal {
        user_name: record.user_name,
        arn: record.user_arn,
        user_id,
        access_key_id: record.access_key_id,
        scope_secret_id: record.scope_secret_id,
    }
}

/// The caller's unique id: the user's `AIDA…` id, or for a short-lived key (a rotation function's
/// step) AWS's assumed-role form `AROA…:session`, with the same 16 characters as the owning
/// user's id and the key's id as the session name. A user's own key with an expiry is still
/// the user's: only a step's key is scoped to a secret.
fn caller_user_id(record: &kura_store::AccessKeyRecord) -> String {
    match record.scope_secret_id {
        Some(_) => format!(
            "AROA{}:{}",
            record.user_id.get(4..).unwrap_or_default(),
            record.access_key_id
        ),
        None => record.user_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use kura_core::Timestamp;
    use kura_core::model::{SealedValue, ValueKind};
    use kura_store::AccessKeyRecord;

    use super::caller_user_id;

    #[test]
    fn short_lived_keys_get_the_assumed_role_form() {
        let mut key = AccessKeyRecord {
            access_key_id: "ASIAABCDEFGHIJKLMNOP".into(),
            user_name: "kura-rotation".into(),
            user_arn: "arn:aws:iam::123456789012:user/kura-rotation".into(),
            user_id: "AIDAQRSTUVWXYZ234567".into(),
            sealed_secret: SealedValue {
                kind: ValueKind::String,
                ciphertext: Vec::new(),
                wrapped_key: Vec::new(),
                key_name: String::new(),
                key_version: 0,
            },
            active: true,
            created_at: Timestamp(0),
            expires_at: None,
            scope_secret_id: None,
            last_used_at: None,
        };
        assert_eq!(caller_user_id(&key), "AIDAQRSTUVWXYZ234567");
        // A user's key with an expiry is still the user's.
        key.expires_at = Some(Timestamp(1));
        assert_eq!(caller_user_id(&key), "AIDAQRSTUVWXYZ234567");
        key.scope_secret_id = Some(7);
        assert_eq!(
            caller_user_id(&key),
            "AROAQRSTUVWXYZ234567:ASIAABCDEFGHIJKLMNOP"
        );
    }
}
