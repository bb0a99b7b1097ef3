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
        // AWS answers a name outside its pattern with ValidationException.
        return Err(Error::validation(format!(
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
    if d.chars().any(char::is_control) {
        return Err(Error::validation(
            "Description must not contain control characters (such as NUL, newline, tab or ESC).",
        ));
    }
    Ok(())
}

/// AWS's tag pattern `^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$`: letters, separators (spaces),
/// digits and `_.:/=+-@`. `is_alphabetic` is Unicode's Alphabetic, a slight superset of
/// `\p{L}` (it adds some combining marks); whitespace less controls is exactly `\p{Z}`.
fn tag_char_ok(c: char) -> bool {
    c.is_alphabetic()
        || c.is_numeric()
        || (c.is_whitespace() && !c.is_control())
        || "_.:/=+-@".contains(c)
}

const TAG_CHARS: &str = "letters, digits, spaces and _.:/=+-@";

/// A tag key as TagResource, UntagResource and CreateSecret accept it.
pub fn validate_tag_key(key: &str) -> Result<()> {
    let k = key.chars().count();
    if !(1..=128).contains(&k) {
        return Err(Error::validation(format!(
            "Tag keys must be 1 to 128 characters; one has {k}."
        )));
    }
    if !key.chars().all(tag_char_ok) {
        return Err(Error::validation(format!(
            "A tag key may contain only {TAG_CHARS}."
        )));
    }
    // AWS reserves the prefix in any case (`AWS:`, `Aws:` too).
    if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
        return Err(Error::invalid_parameter(
            "Tag keys starting with \"aws:\" are reserved for AWS.",
        ));
    }
    Ok(())
}

pub fn validate_tag(key: &str, value: &str) -> Result<()> {
    validate_tag_key(key)?;
    if value.chars().count() > 256 {
        return Err(Error::validation(format!(
            "The value of tag {key:?} must be at most 256 characters."
        )));
    }
    if !value.chars().all(tag_char_ok) {
        return Err(Error::validation(format!(
            "The value of tag {key:?} may contain only {TAG_CHARS}."
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

    #[test]
    fn tags_follow_aws_pattern() {
        for ok in [
            "env",
            "a b",
            "Ünïcødé",
            "日本",
            "x_.:/=+-@1",
            "nbsp\u{a0}x",
            "٣",
        ] {
            assert!(validate_tag(ok, ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "nul\0",
            "new\nline",
            "esc\u{1b}",
            "<b>",
            "tab\t",
            "a;b",
            "q\"",
            "del\u{7f}",
        ] {
            let e = validate_tag(bad, "v").unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::Validation, "{bad:?}");
            assert!(e.message.contains("tag key"), "{}", e.message);
            let e = validate_tag("k", bad).unwrap_err();
            assert!(e.message.contains("value of tag \"k\""), "{}", e.message);
        }
        assert!(validate_tag("", "v").is_err());
        assert!(validate_tag("k", "").is_ok());
        for reserved in ["aws:x", "AWS:x", "Aws:"] {
            assert_eq!(
                validate_tag(reserved, "v").unwrap_err().code,
                crate::ErrorCode::InvalidParameter
            );
        }
        assert!(validate_tag("awsx", "v").is_ok());
        assert!(validate_tag("ü", "v").is_ok()); // a multibyte first char: no slicing panic
    }

    #[test]
    fn descriptions_refuse_control_characters() {
        assert!(validate_description("My basic description: <ok> & ünïcode").is_ok());
        for bad in ["a\0", "line\nbreak", "\u{1b}[31m", "tab\t", "\u{85}"] {
            let e = validate_description(bad).unwrap_err();
            assert!(e.message.contains("control characters"), "{}", e.message);
        }
    }
}
