//! Rotation functions: the built-in ones, and `command` / `webhook` functions defined with
//! Kura.CreateRotationFunction. A secret names its function by a Lambda-style ARN.

use std::collections::BTreeMap;
use std::time::Duration;

use kura_core::{Error, ErrorCode, Result};
use kura_store::RotationFunctionRecord;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::service::identity::identity_policy_text;
use crate::service::password::password_spec;
use crate::service::types::*;
use crate::service::{Caller, Service};
use kura_rotation::function::{RotationFunction, Settings};
use kura_rotation::functions::command::CommandFunction;
use kura_rotation::functions::managed::Managed;
use kura_rotation::functions::password::PasswordFunction;
use kura_rotation::functions::webhook::WebhookFunction;

/// The built-in function that regenerates a password (the whole string, or a JSON `password`).
pub const KURA_PASSWORD: &str = kura_rotation::functions::password::NAME;
pub(super) const DEFAULT_TIMEOUT_SECONDS: i64 = 60;
const MAX_TIMEOUT_SECONDS: i64 = 900;
const DEFAULT_MAX_ATTEMPTS: i64 = 5;
const MAX_ATTEMPTS: i64 = 10;
const MAX_COMMAND_ARGS: usize = 64;
/// The user row behind a function's step keys is `kura-rotation/NAME`: not a name IAM allows
/// (it has a '/'), so no user API reaches it.
pub(crate) const PRINCIPAL_PREFIX: &str = "kura-rotation/";

pub(crate) fn principal_user(function: &str) -> String {
    format!("{PRINCIPAL_PREFIX}{function}")
}

/// The JSON kept in `rotation_functions.config`: no secret. A webhook's signing secret and a
/// command's environment (its values may be credentials) are sealed beside it.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    environment_keys: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_rules: Option<StoredPasswordRules>,
    timeout_seconds: i64,
    max_attempts: i64,
    /// The execution policy: IAM JSON, added to what the step key may do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policy: Option<String>,
}

/// A `kura-password` function's rules as stored (GetRandomPassword's parameter names).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StoredPasswordRules {
    password_length: Option<i64>,
    exclude_characters: Option<String>,
    exclude_numbers: Option<bool>,
    exclude_punctuation: Option<bool>,
    exclude_uppercase: Option<bool>,
    exclude_lowercase: Option<bool>,
    include_space: Option<bool>,
    require_each_included_type: Option<bool>,
}

impl From<StoredPasswordRules> for GetRandomPasswordRequest {
    fn from(r: StoredPasswordRules) -> Self {
        GetRandomPasswordRequest {
            password_length: r.password_length,
            exclude_characters: r.exclude_characters,
            exclude_numbers: r.exclude_numbers,
            exclude_punctuation: r.exclude_punctuation,
            exclude_uppercase: r.exclude_uppercase,
            exclude_lowercase: r.exclude_lowercase,
            include_space: r.include_space,
            require_each_included_type: r.require_each_included_type,
        }
    }
}

impl From<GetRandomPasswordRequest> for StoredPasswordRules {
    fn from(r: GetRandomPasswordRequest) -> Self {
        StoredPasswordRules {
            password_length: r.password_length,
            exclude_characters: r.exclude_characters,
            exclude_numbers: r.exclude_numbers,
            exclude_punctuation: r.exclude_punctuation,
            exclude_uppercase: r.exclude_uppercase,
            exclude_lowercase: r.exclude_lowercase,
            include_space: r.include_space,
            require_each_included_type: r.require_each_included_type,
        }
    }
}

fn validate_function_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(Error::invalid_parameter(format!(
            "Rotation function name {name:?} must be 1-64 characters of letters, digits, '-' and '_'."
        )));
    }
    Ok(())
}

/// `http://` is only for this machine; anything else must be HTTPS.
pub(crate) fn validate_hook_url(field: &str, url: &str) -> Result<()> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| Error::invalid_parameter(format!("{field} {url:?} is not a URL: {e}.")))?;
    let loopback = match parsed.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.to_canonical().is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match parsed.scheme() {
        "https" if parsed.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(Error::invalid_parameter(format!(
            "{field} must be an https:// URL, or http:// to 127.0.0.1, ::1 or localhost; got {url:?}."
        ))),
    }
}

fn bounded(field: &str, v: Option<i64>, default: i64, max: i64) -> Result<i64> {
    match v {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(Error::invalid_parameter(format!(
            "{field} must be between 1 and {max}; got {n}."
        ))),
    }
}

impl Service {
    /// The principal a function's steps act as, like a Lambda's execution role.
    pub(crate) fn function_principal_arn(&self, name: &str) -> String {
        format!("arn:aws:iam::{}:role/kura-rotation/{name}", self.account)
    }

    /// The execution policy of a stored function, if it has one.
    pub(crate) async fn function_policy(&self, name: &str) -> Result<Option<String>> {
        let Some(rec) = self.store.rotation_function(name).await? else {
            return Ok(None);
        };
        let cfg: StoredConfig = serde_json::from_str(&rec.config)
            .map_err(|e| Error::internal(format!("stored rotation function {name}: {e}")))?;
        Ok(cfg.policy)
    }

    pub(crate) fn function_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            self.region, self.account
        )
    }

    /// `RotationLambdaARN` → function name. A bare name is accepted too.
    pub(crate) fn function_name_of(&self, arn: &str) -> Result<String> {
        let name = if arn.starts_with("arn:") {
            let parts: Vec<&str> = arn.split(':').collect();
            let shape_ok = matches!(parts.as_slice(), ["arn", "aws", "lambda", _, _, "function", n, ..] if !n.is_empty())
                && parts.len() <= 8;
            if !shape_ok {
                return Err(Error::invalid_parameter(format!(
                    "RotationLambdaARN {arn:?} is not of the form arn:aws:lambda:REGION:ACCOUNT:function:NAME."
                )));
            }
            if parts[3] != self.region || parts[4] != self.account {
                return Err(Error::invalid_parameter(format!(
                    "RotationLambdaARN {arn:?} names another region or account; this kura's functions are {}.",
                    self.function_arn("NAME")
                )));
            }
            parts[6].to_string()
        } else {
            arn.to_string()
        };
        validate_function_name(&name)?;
        Ok(name)
    }

    /// Loads a function by name; built-ins need no definition.
    pub(crate) async fn load_function(&self, name: &str) -> Result<Box<dyn RotationFunction>> {
        let built_in = || Settings {
            name: name.to_string(),
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECONDS as u64),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        };
        if name == KURA_PASSWORD {
            let rules = GetRandomPasswordRequest::default();
            return Ok(Box::new(PasswordFunction::new(
                built_in(),
                password_spec(&rules)?,
            )));
        }
        if let Some(m) = Managed::from_name(name) {
            return Ok(m.function(built_in()));
        }
        let rec = self.store.rotation_function(name).await?.ok_or_else(|| {
            Error::not_found(format!(
                "The rotation function {name} does not exist. Create it with Kura.CreateRotationFunction, or use the built-in {KURA_PASSWORD}."
            ))
        })?;
        let cfg: StoredConfig = serde_json::from_str(&rec.config)
            .map_err(|e| Error::internal(format!("stored rotation function {name}: {e}")))?;
        let settings = Settings {
            name: name.to_string(),
            timeout: Duration::from_secs(cfg.timeout_seconds.max(1) as u64),
            max_attempts: cfg.max_attempts.max(1),
        };
        Ok(match rec.kind.as_str() {
            KURA_PASSWORD => {
                let rules = cfg.password_rules.unwrap_or_default().into();
                Box::new(PasswordFunction::new(settings, password_spec(&rules)?))
            }
            "command" => {
                let env = match &rec.sealed_secret {
                    Some(sealed) => {
                        let json = self.open_internal(&function_context(name), sealed)?;
                        serde_json::from_slice(&json).map_err(|_| {
                            Error::internal(format!(
                                "the sealed environment of rotation function {name} is damaged"
                            ))
                        })?
                    }
                    None => BTreeMap::new(),
                };
                Box::new(CommandFunction::new(
                    settings,
                    cfg.command.unwrap_or_default(),
                    env,
                ))
            }
            "webhook" => {
                let sealed = rec.sealed_secret.as_ref().ok_or_else(|| {
                    Error::internal(format!("webhook function {name} has no signing secret"))
                })?;
                let secret = self.open_internal(&function_context(name), sealed)?;
                Box::new(WebhookFunction::new(
                    settings,
                    cfg.url.unwrap_or_default(),
                    secret,
                ))
            }
            other => {
                return Err(Error::internal(format!(
                    "stored rotation function {name} has unknown type {other}"
                )));
            }
        })
    }

    fn function_entry(&self, rec: &RotationFunctionRecord) -> Result<RotationFunctionEntry> {
        let cfg: StoredConfig = serde_json::from_str(&rec.config)
            .map_err(|e| Error::internal(format!("stored rotation function {}: {e}", rec.name)))?;
        Ok(RotationFunctionEntry {
            name: rec.name.clone(),
            arn: self.function_arn(&rec.name),
            kind: rec.kind.clone(),
            built_in: false,
            principal_arn: self.function_principal_arn(&rec.name),
            policy: cfg.policy,
            command: cfg.command,
            // Environment values can be credentials for the function: show only the names.
            environment_keys: cfg.environment_keys,
            url: cfg.url,
            password_rules: cfg.password_rules.map(Into::into),
            timeout_seconds: cfg.timeout_seconds,
            max_attempts: cfg.max_attempts,
            created_date: Some(rec.created_at),
        })
    }

    pub async fn create_rotation_function(
        &self,
        p: &Caller,
        req: CreateRotationFunctionRequest,
    ) -> Result<CreateRotationFunctionResponse> {
        validate_function_name(&req.name)?;
        if req.name.starts_with("kura-") {
            return Err(Error::invalid_parameter(format!(
                "Rotation function names starting with \"kura-\" are reserved for built-in functions; rename {:?}.",
                req.name
            )));
        }
        let timeout_seconds = bounded(
            "TimeoutSeconds",
            req.timeout_seconds,
            DEFAULT_TIMEOUT_SECONDS,
            MAX_TIMEOUT_SECONDS,
        )?;
        let max_attempts = bounded(
            "MaxAttempts",
            req.max_attempts,
            DEFAULT_MAX_ATTEMPTS,
            MAX_ATTEMPTS,
        )?;
        let mut cfg = StoredConfig {
            timeout_seconds,
            max_attempts,
            ..Default::default()
        };
        let unexpected = |field: &str, kind: &str| {
            Error::invalid_parameter(format!("{field} does not apply to a {kind} function."))
        };
        let mut signing_secret = None;
        let mut sealed_payload: Option<Zeroizing<String>> = None;
        let mut generated = false;
        match req.kind.as_str() {
            "command" => {
                if !p.is_administrator() {
                    return Err(Error::new(
                        ErrorCode::AccessDenied,
                        format!(
                            "{} may not create command functions: they run programs on the kura server, so only administrators may.",
                            p.arn
                        ),
                    ));
                }
                let argv = req.command.ok_or_else(|| {
                    Error::invalid_parameter(
                        "A command function needs Command: the program and its arguments, e.g. [\"/usr/bin/python3\", \"/opt/rotate.py\"].",
                    )
                })?;
                match argv.first() {
                    Some(prog) if std::path::Path::new(prog).is_absolute() => {}
                    _ => {
                        return Err(Error::invalid_parameter(
                            "Command[0] must be the absolute path of the program to run.",
                        ));
                    }
                }
                if argv.len() > MAX_COMMAND_ARGS || argv.iter().any(|a| a.contains('\0')) {
                    return Err(Error::invalid_parameter(format!(
                        "Command must have at most {MAX_COMMAND_ARGS} arguments, none containing NUL."
                    )));
                }
                if let Some(env) = &req.environment {
                    for k in env.keys() {
                        let ok = !k.is_empty()
                            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                            && !k.starts_with(|c: char| c.is_ascii_digit());
                        if !ok {
                            return Err(Error::invalid_parameter(format!(
                                "Environment name {k:?} must be letters, digits and '_', not starting with a digit."
                            )));
                        }
                    }
                }
                for (field, set) in [
                    ("Url", req.url.is_some()),
                    ("SigningSecret", req.signing_secret.is_some()),
                    ("PasswordRules", req.password_rules.is_some()),
                ] {
                    if set {
                        return Err(unexpected(field, "command"));
                    }
                }
                cfg.command = Some(argv);
                if let Some(policy) = req.policy {
                    cfg.policy = Some(identity_policy_text("Policy", policy)?);
                }
                if let Some(env) = req.environment {
                    cfg.environment_keys = Some(env.keys().cloned().collect());
                    let plain: std::collections::BTreeMap<&str, &str> = env
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.0.as_str()))
                        .collect();
                    let json = serde_json::to_string(&plain)
                        .map_err(|e| Error::internal(format!("encoding an environment: {e}")))?;
                    sealed_payload = Some(Zeroizing::new(json));
                }
            }
            "webhook" => {
                let url = req.url.ok_or_else(|| {
                    Error::invalid_parameter(
                        "A webhook function needs Url, where kura POSTs each step's event.",
                    )
                })?;
                validate_hook_url("Url", &url)?;
                for (field, set) in [
                    ("Command", req.command.is_some()),
                    ("Environment", req.environment.is_some()),
                    ("PasswordRules", req.password_rules.is_some()),
                    // Only a command's steps call kura with a key of their own.
                    ("Policy", req.policy.is_some()),
                ] {
                    if set {
                        return Err(unexpected(field, "webhook"));
                    }
                }
                signing_secret = Some(match req.signing_secret {
                    Some(s) if s.0.len() >= 16 => s.0,
                    Some(_) => {
                        return Err(Error::invalid_parameter(
                            "SigningSecret must be at least 16 characters; omit it to have kura generate one.",
                        ));
                    }
                    None => {
                        generated = true;
                        Zeroizing::new(kura_crypto::random::alnum(40)?)
                    }
                });
                cfg.url = Some(url);
            }
            KURA_PASSWORD => {
                for (field, set) in [
                    ("Command", req.command.is_some()),
                    ("Environment", req.environment.is_some()),
                    ("Url", req.url.is_some()),
                    ("SigningSecret", req.signing_secret.is_some()),
                    ("Policy", req.policy.is_some()),
                ] {
                    if set {
                        return Err(unexpected(field, KURA_PASSWORD));
                    }
                }
                let rules = req.password_rules.unwrap_or_default();
                password_spec(&rules)?;
                cfg.password_rules = Some(rules.into());
            }
            other => {
                return Err(Error::invalid_parameter(format!(
                    "Type {other:?} is not a rotation function type: use command, webhook or {KURA_PASSWORD}."
                )));
            }
        }
        if let Some(s) = &signing_secret {
            sealed_payload = Some(s.clone());
        }
        let sealed_secret = sealed_payload
            .as_ref()
            .map(|s| self.seal_internal(&function_context(&req.name), s.as_bytes()))
            .transpose()?;
        let rec = RotationFunctionRecord {
            name: req.name.clone(),
            kind: req.kind.clone(),
            config: serde_json::to_string(&cfg)
                .map_err(|e| Error::internal(format!("encoding a rotation function: {e}")))?,
            sealed_secret,
            created_at: self.clock.now(),
        };
        self.store.insert_rotation_function(&rec, &p.audit).await?;
        tracing::info!(function = %rec.name, kind = %rec.kind, by = %p.arn, "rotation function created");
        Ok(CreateRotationFunctionResponse {
            function: self.function_entry(&rec)?,
            signing_secret: signing_secret.filter(|_| generated).map(SecretText),
        })
    }

    pub async fn list_rotation_functions(
        &self,
        _p: &Caller,
        _req: Empty,
    ) -> Result<ListRotationFunctionsResponse> {
        let built_in = |name: &str| RotationFunctionEntry {
            name: name.to_string(),
            arn: self.function_arn(name),
            kind: name.to_string(),
            built_in: true,
            principal_arn: self.function_principal_arn(name),
            policy: None,
            command: None,
            environment_keys: None,
            url: None,
            password_rules: None,
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            created_date: None,
        };
        let mut out: Vec<RotationFunctionEntry> = std::iter::once(KURA_PASSWORD)
            .chain(Managed::ALL.iter().map(|m| m.name()))
            .map(built_in)
            .collect();
        for rec in self.store.list_rotation_functions().await? {
            out.push(self.function_entry(&rec)?);
        }
        Ok(ListRotationFunctionsResponse {
            rotation_functions: out,
        })
    }

    pub async fn delete_rotation_function(&self, p: &Caller, req: NameRequest) -> Result<Empty> {
        validate_function_name(&req.name)?;
        if req.name == KURA_PASSWORD || Managed::from_name(&req.name).is_some() {
            return Err(Error::invalid_request(format!(
                "{} is built in and can't be deleted.",
                req.name
            )));
        }
        let arn = self.function_arn(&req.name);
        if !self
            .store
            .delete_rotation_function(&req.name, &arn, &p.audit)
            .await?
        {
            return Err(Error::not_found(format!(
                "The rotation function {} does not exist.",
                req.name
            )));
        }
        // Its principal goes too (with any step key still alive): a function created again
        // under this name starts afresh.
        if let Err(e) = self
            .store
            .delete_user(&principal_user(&req.name), &p.audit)
            .await
        {
            tracing::warn!(function = %req.name, detail = ?e, "cannot delete a rotation function's principal");
        }
        tracing::info!(function = %req.name, by = %p.arn, "rotation function deleted");
        Ok(Empty {})
    }
}

pub(crate) fn function_context(name: &str) -> Vec<u8> {
    format!("kura/rotation-function/{name}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::validate_hook_url;

    #[test]
    fn plain_http_only_to_this_machine() {
        for ok in [
            "https://hooks.example.com/rotate",
            "http://127.0.0.1:8080/rotate",
            "http://[::1]:8080/rotate",
            // An IPv4 loopback address written as IPv6 is this machine too.
            "http://[::ffff:127.0.0.1]:8080/rotate",
            "http://localhost/rotate",
        ] {
            assert!(validate_hook_url("Url", ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://hooks.example.com/rotate",
            "http://[::ffff:10.0.0.1]/rotate",
            "ftp://127.0.0.1/x",
            "not a url",
        ] {
            let e = validate_hook_url("Url", refused).unwrap_err();
            assert!(e.message.contains("Url"), "{refused}: {}", e.message);
        }
    }
}
