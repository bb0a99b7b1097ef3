//! Certificate templates: which CA issues, for how long, for which names, with which key and
//! for which uses. `check` is the one place a request is judged; each refusal names the rule.

use std::net::IpAddr;

use kura_core::duration::show_duration;
use kura_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::KeyAlgorithm;

/// What an issued certificate may be used for (its extended key usages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyUsage {
    Server,
    Client,
    CodeSigning,
}

impl KeyUsage {
    pub const ALL: [KeyUsage; 3] = [KeyUsage::Server, KeyUsage::Client, KeyUsage::CodeSigning];

    pub fn name(self) -> &'static str {
        match self {
            KeyUsage::Server => "server",
            KeyUsage::Client => "client",
            KeyUsage::CodeSigning => "code_signing",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|u| u.name() == s)
            .ok_or_else(|| {
                Error::invalid_parameter(format!(
                    "KeyUsages: {s:?} is not a key usage; use server, client or code_signing."
                ))
            })
    }
}

/// A template's rules, as stored (JSON) and as the API shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// The CA that signs.
    pub authority: String,
    /// A certificate's lifetime when the request names none, in seconds.
    pub ttl_seconds: i64,
    /// The longest lifetime a request may ask for, in seconds.
    pub max_ttl_seconds: i64,
    /// Names a certificate may carry: `example.com` (exactly), `.example.com` (any name
    /// below it), or a glob such as `web-*.example.com` (`*` within one label).
    pub allowed_domains: Vec<String>,
    pub allow_ip_sans: bool,
    pub key_algorithm: KeyAlgorithm,
    pub key_usages: Vec<KeyUsage>,
}

impl serde::Serialize for KeyAlgorithm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for KeyAlgorithm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        KeyAlgorithm::parse("key_algorithm", &s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// A DNS name a certificate can carry: labels of letters, digits and '-', at most 253 long.
pub(crate) fn valid_dns_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Whether `name` matches one AllowedDomains entry (see [`Template::allowed_domains`]).
fn domain_matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.to_ascii_lowercase(), name.to_ascii_lowercase());
    if let Some(parent) = p.strip_prefix('.') {
        return n.len() > parent.len() + 1 && n.ends_with(&format!(".{parent}"));
    }
    if !p.contains('*') {
        return p == n;
    }
    let (pl, nl): (Vec<&str>, Vec<&str>) = (p.split('.').collect(), n.split('.').collect());
    pl.len() == nl.len() && pl.iter().zip(&nl).all(|(p, n)| glob_label(p, n))
}

/// One label against a pattern label in which `*` matches any run of characters.
fn glob_label(p: &str, n: &str) -> bool {
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == n;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !n.starts_with(first) || n.len() < first.len() + last.len() || !n.ends_with(last) {
        return false;
    }
    let mut rest = &n[first.len()..n.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// What a certificate secret asks for.
#[derive(Debug, Clone, Default)]
pub struct Names<'a> {
    pub common_name: &'a str,
    pub alt_names: &'a [String],
    pub ip_sans: &'a [String],
    /// The lifetime asked for, in seconds.
    pub ttl_seconds: Option<i64>,
}

impl Template {
    /// Checks the rules themselves (at creation).
    pub fn validate(&self) -> Result<()> {
        if self.ttl_seconds > self.max_ttl_seconds {
            return Err(Error::invalid_parameter(format!(
                "Ttl ({}) is longer than MaxTtl ({}): the default lifetime must be allowed.",
                show_duration(self.ttl_seconds),
                show_duration(self.max_ttl_seconds)
            )));
        }
        if self.allowed_domains.is_empty() {
            return Err(Error::invalid_parameter(
                "AllowedDomains needs at least one entry: example.com (exactly), .example.com (any name below it) or a glob such as web-*.example.com.",
            ));
        }
        for d in &self.allowed_domains {
            let probe = d.strip_prefix('.').unwrap_or(d).replace('*', "x");
            if !valid_dns_name(&probe) {
                return Err(Error::invalid_parameter(format!(
                    "AllowedDomains entry {d:?} is not a domain: use example.com, .example.com or a glob such as web-*.example.com."
                )));
            }
        }
        if self.key_usages.is_empty() {
            return Err(Error::invalid_parameter(
                "KeyUsages needs at least one of server, client and code_signing.",
            ));
        }
        Ok(())
    }

    /// Judges a request against the rules; the lifetime to issue for, in seconds. `name` is
    /// the template's, for the message.
    pub fn check(&self, name: &str, req: &Names<'_>) -> Result<i64> {
        let allowed = || self.allowed_domains.join(", ");
        let names = std::iter::once(("common_name", req.common_name))
            .chain(req.alt_names.iter().map(|n| ("alt_names", n.as_str())));
        for (field, n) in names {
            if !valid_dns_name(n) {
                return Err(Error::invalid_request(format!(
                    "{field} {n:?} is not a DNS name (letters, digits and '-' in dot-separated labels; wildcards are not issued)."
                )));
            }
            if !self.allowed_domains.iter().any(|p| domain_matches(p, n)) {
                return Err(Error::invalid_request(format!(
                    "Template {name} refuses {field} {n:?}: rule AllowedDomains allows only {}.",
                    allowed()
                )));
            }
        }
        if !req.ip_sans.is_empty() && !self.allow_ip_sans {
            return Err(Error::invalid_request(format!(
                "Template {name} refuses ip_sans: rule AllowIpSans is false."
            )));
        }
        for ip in req.ip_sans {
            if ip.parse::<IpAddr>().is_err() {
                return Err(Error::invalid_request(format!(
                    "ip_sans {ip:?} is not an IP address."
                )));
            }
        }
        let ttl = req.ttl_seconds.unwrap_or(self.ttl_seconds);
        if ttl > self.max_ttl_seconds {
            return Err(Error::invalid_request(format!(
                "Template {name} refuses ttl {}: rule MaxTtl allows at most {}.",
                show_duration(ttl),
                show_duration(self.max_ttl_seconds)
            )));
        }
        Ok(ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Template {
        Template {
            authority: "ca".into(),
            ttl_seconds: 86_400,
            max_ttl_seconds: 30 * 86_400,
            allowed_domains: vec![
                "example.com".into(),
                ".svc.example.com".into(),
                "web-*.example.net".into(),
            ],
            allow_ip_sans: false,
            key_algorithm: KeyAlgorithm::EcdsaP256,
            key_usages: vec![KeyUsage::Server],
        }
    }

    fn names<'a>(cn: &'a str, alt: &'a [String], ip: &'a [String]) -> Names<'a> {
        Names {
            common_name: cn,
            alt_names: alt,
            ip_sans: ip,
            ttl_seconds: None,
        }
    }

    #[test]
    fn domains_match_exactly_below_or_by_glob() {
        let t = template();
        for ok in [
            "example.com",
            "a.svc.example.com",
            "a.b.svc.example.com",
            "web-01.example.net",
        ] {
            assert_eq!(t.check("t", &names(ok, &[], &[])).unwrap(), 86_400, "{ok}");
        }
        for refused in [
            "www.example.com",
            "svc.example.com",
            "web-01.x.example.net",
            "example.org",
        ] {
            let e = t.check("t", &names(refused, &[], &[])).unwrap_err();
            assert!(
                e.message.contains("AllowedDomains"),
                "{refused}: {}",
                e.message
            );
        }
        let alt = vec!["evil.org".to_string()];
        let e = t.check("t", &names("example.com", &alt, &[])).unwrap_err();
        assert!(
            e.message.contains("alt_names \"evil.org\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn ip_sans_and_ttl_are_judged_by_their_rules() {
        let mut t = template();
        let ip = vec!["10.0.0.1".to_string()];
        let e = t.check("t", &names("example.com", &[], &ip)).unwrap_err();
        assert!(e.message.contains("AllowIpSans"), "{}", e.message);
        t.allow_ip_sans = true;
        t.check("t", &names("example.com", &[], &ip)).unwrap();
        let mut n = names("example.com", &[], &[]);
        n.ttl_seconds = Some(31 * 86_400);
        let e = t.check("t", &n).unwrap_err();
        assert!(
            e.message.contains("MaxTtl allows at most 30d"),
            "{}",
            e.message
        );
    }
}
