//! Names, ARNs and the other identifiers a client sends, with the validation AWS applies.

use crate::{Error, Result};

pub const MAX_NAME_LEN: usize = 512;
pub const ARN_SUFFIX_LEN: usize = 6;
pub const MAX_VALUE_BYTES: usize = 65_536;
pub const MAX_DESCRIPTION_CHARS: usize = 2048;

fn name_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/_+=.@-".contains(c)
}

pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(Error::validation(format!(
            "Invalid name: it must be 1 to {MAX_NAME_LEN} characters long; this one has {}.",
            name.chars().count()
        )));
    }
    if let Some(bad) = name.chars().find(|c| !name_char_ok(*c)) {
        return Err(Error::invalid_parameter(format!(
            "Invalid name: {bad:?} is not allowed. A name may contain only letters, digits and /_+=.@-"
        )));
    }
    Ok(())
}

/// `arn:aws:secretsmanager:{region}:{account}:secret:{name}-{suffix}`
pub fn secret_arn(region: &str, account: &str, name: &str, suffix: &str) -> String {
    format!("arn:aws:secretsmanager:{region}:{account}:secret:{name}-{suffix}")
}

/// How a `SecretId` names a secret: by name, or by ARN (with or without the random suffix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Name(String),
    /// A full ARN, or an ARN without its suffix; `name_part` is everything after `:secret:`.
    Arn {
        arn: String,
        name_part: String,
    },
}

impl SecretRef {
    pub fn parse(secret_id: &str) -> Result<Self> {
        if secret_id.is_empty() || secret_id.len() > 2048 {
            return Err(Error::validation(
                "SecretId must be 1 to 2048 characters: a secret name or ARN.",
            ));
        }
        if !secret_id.starts_with("arn:") {
            return Ok(SecretRef::Name(secret_id.to_string()));
        }
        let parts: Vec<&str> = secret_id.splitn(7, ':').collect();
        match parts.as_slice() {
            [_, _, "secretsmanager", _, _, "secret", name] if !name.is_empty() => {
                Ok(SecretRef::Arn {
                    arn: secret_id.to_string(),
                    name_part: (*name).to_string(),
                })
            }
            _ => Err(Error::invalid_parameter(format!(
                "SecretId {secret_id:?} is not a valid secret ARN: expected arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME"
            ))),
        }
    }
}

/// Prints the `SecretId` the reference was parsed from.
impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Name(name) => f.write_str(name),
            SecretRef::Arn { arn, .. } => f.write_str(arn),
        }
    }
}

/// Validates a `ClientRequestToken` / `VersionId` (32–64 printable characters; SDKs send UUIDs).
pub fn validate_version_id(field: &str, id: &str) -> Result<()> {
    let n = id.chars().count();
    if !(32..=64).contains(&n) {
        return Err(Error::validation(format!(
            "{field} must be 32 to 64 characters long (a UUID is typical); this one has {n}."
        )));
    }
    if !id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Error::invalid_parameter(format!(
            "{field} may contain only printable ASCII characters without spaces."
        )));
    }
    Ok(())
}

pub fn validate_description(d: &str) -> Result<()> {
    if d.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::validation(format!(
            "Description must be at most {MAX_DESCRIPTION_CHARS} characters."
        )));
    }
    Ok(())
}

pub fn validate_tag(key: &str, value: &str) -> Result<()> {
    let k = key.chars().count();
    if !(1..=128).contains(&k) {
        return Err(Error::validation(format!(
            "Tag keys must be 1 to 128 characters; {key:?} has {k}."
        )));
    }
    if key.starts_with("aws:") {
        return Err(Error::invalid_parameter(
            "Tag keys starting with \"aws:\" are reserved.",
        ));
    }
    if value.chars().count() > 256 {
        return Err(Error::validation(format!(
            "The value of tag {key:?} must be at most 256 characters."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("prod/db-main_1+x=y.z@w").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name(&"a".repeat(512)).is_ok());
        assert!(validate_name(&"a".repeat(513)).is_err());
        let e = validate_name("bad name").unwrap_err();
        assert!(e.message.contains("' '"), "{}", e.message);
    }

    #[test]
    fn secret_refs() {
        assert_eq!(
            SecretRef::parse("db").unwrap(),
            SecretRef::Name("db".into())
        );
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:a:b-AbC123";
        assert_eq!(
            SecretRef::parse(arn).unwrap(),
            SecretRef::Arn {
                arn: arn.into(),
                name_part: "a:b-AbC123".into()
            }
        );
        assert!(SecretRef::parse("arn:aws:iam::1:user/x").is_err());
        assert!(SecretRef::parse("").is_err());
    }

    #[test]
    fn version_ids() {
        assert!(validate_version_id("VersionId", &"a".repeat(31)).is_err());
        assert!(validate_version_id("VersionId", &"a".repeat(32)).is_ok());
        assert!(validate_version_id("VersionId", &"a".repeat(65)).is_err());
        assert!(validate_version_id("VersionId", &format!("{} ", "a".repeat(32))).is_err());
    }
}
