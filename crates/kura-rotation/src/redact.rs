//! Removing a secret's values from the text of a failed rotation step before it is stored,
//! logged or sent. A function's error is readable with DescribeSecret alone (LastError), so
//! it must not carry what GetSecretValue guards.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

/// What replaces a value in the text.
pub const MARK: &str = "[redacted]";
/// Shorter strings match unrelated text, so they cannot be searched for reliably.
pub const MIN_SEARCHABLE_CHARS: usize = 3;
/// Longer texts are not searched (the work grows with text × values); their details are withheld.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;
/// Bounds the work on a secret whose versions hold many large JSON documents.
const MAX_NEEDLES: usize = 50_000;
/// Base64 of a value inside a longer base64 text is searched by its middle part, if this long.
const MIN_ALIGNED_CHARS: usize = 8;

/// `text` with every form of every value in `values` replaced by [`MARK`], or why that cannot
/// be done safely (then the caller keeps only what it made itself: the step and exit status).
///
/// A value is searched whole and, when it is JSON, leaf by leaf at any depth (strings, and
/// numbers as their text; object keys are names, not values). Each is searched as itself,
/// JSON-escaped (once and twice), in base64 (standard and URL-safe, alone or inside longer
/// base64 at any alignment) and in hex (lower and upper case). A string shorter than
/// [`MIN_SEARCHABLE_CHARS`] makes the text unsafe; a number that short (0-99) is not
/// searched, as it would match every digit of the text and such numbers are ports or counts.
pub fn redact(text: &str, values: &[&[u8]]) -> Result<String, &'static str> {
    if text.len() > MAX_TEXT_BYTES {
        return Err("the error text is too long to check for secret values");
    }
    let mut needles: Vec<Zeroizing<String>> = Vec::new();
    for v in values {
        add_value(v, &mut needles)?;
        if needles.len() > MAX_NEEDLES {
            return Err("the secret holds too many values to check the error text against");
        }
    }
    // Longest first, so a value containing another is replaced whole; equal ones adjacent.
    needles.sort_by(|a, b| {
        b.len()
            .cmp(&a.len())
            .then_with(|| a.as_str().cmp(b.as_str()))
    });
    needles.dedup_by(|a, b| a.as_str() == b.as_str());
    let mut out = Zeroizing::new(text.to_string());
    for n in &needles {
        if out.contains(n.as_str()) {
            out = Zeroizing::new(out.replace(n.as_str(), MARK));
        }
    }
    Ok(out.to_string())
}

fn add_value(bytes: &[u8], needles: &mut Vec<Zeroizing<String>>) -> Result<(), &'static str> {
    if bytes.is_empty() {
        return Ok(());
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        // Binary: only its encodings can appear in a text whole; its printable runs are
        // searched too, in case it was written out raw.
        if bytes.len() < MIN_SEARCHABLE_CHARS {
            return Err("a secret value is too short to search for");
        }
        add_encodings(bytes, needles);
        let lossy = String::from_utf8_lossy(bytes);
        for run in lossy.split('\u{FFFD}') {
            if run.chars().count() >= MIN_SEARCHABLE_CHARS {
                add_string(run, needles)?;
            }
        }
        return Ok(());
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v @ (serde_json::Value::Object(_) | serde_json::Value::Array(_))) => {
            // `{}` or `[]` alone hold nothing; a document long enough is searched whole too.
            if text.trim().chars().count() >= MIN_SEARCHABLE_CHARS {
                add_string(text, needles)?;
            }
            add_leaves(&v, needles)
        }
        Ok(v) => {
            add_string(text, needles)?;
            add_leaves(&v, needles)
        }
        Err(_) => add_string(text, needles),
    }
}

fn add_leaves(
    v: &serde_json::Value,
    needles: &mut Vec<Zeroizing<String>>,
) -> Result<(), &'static str> {
    match v {
        serde_json::Value::String(s) if s.is_empty() => Ok(()),
        serde_json::Value::String(s) => add_string(s, needles),
        serde_json::Value::Number(n) => {
            let t = Zeroizing::new(n.to_string());
            if t.chars().count() >= MIN_SEARCHABLE_CHARS {
                add_string(&t, needles)?;
            }
            Ok(())
        }
        serde_json::Value::Array(items) => items.iter().try_for_each(|i| add_leaves(i, needles)),
        serde_json::Value::Object(map) => map.values().try_for_each(|i| add_leaves(i, needles)),
        serde_json::Value::Bool(_) | serde_json::Value::Null => Ok(()),
    }
}

fn add_string(s: &str, needles: &mut Vec<Zeroizing<String>>) -> Result<(), &'static str> {
    if s.chars().count() < MIN_SEARCHABLE_CHARS {
        return Err("a secret value is too short to search for");
    }
    needles.push(Zeroizing::new(s.to_string()));
    let once = json_escaped(s);
    if once.as_str() != s {
        let twice = json_escaped(&once);
        needles.push(once);
        needles.push(twice);
    }
    add_encodings(s.as_bytes(), needles);
    Ok(())
}

/// `s` as it appears inside a JSON string literal.
fn json_escaped(s: &str) -> Zeroizing<String> {
    let quoted = Zeroizing::new(serde_json::to_string(s).unwrap_or_default());
    let inner = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or("");
    Zeroizing::new(inner.to_string())
}

fn add_encodings(bytes: &[u8], needles: &mut Vec<Zeroizing<String>>) {
    needles.push(Zeroizing::new(hex::encode(bytes)));
    needles.push(Zeroizing::new(hex::encode_upper(bytes)));
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        // Alone (the padding, if any, follows and is left in place).
        needles.push(Zeroizing::new(engine.encode(bytes)));
        // Inside a longer base64 text, the value starts at one of three offsets in a 3-byte
        // group; the characters that encode only its bytes are the same wherever it is.
        for pad in 0..3usize {
            let mut shifted = Zeroizing::new(vec![0u8; pad]);
            shifted.extend_from_slice(bytes);
            let encoded = Zeroizing::new(engine.encode(shifted.as_slice()));
            let start = if pad == 0 { 0 } else { 4 };
            let end = 4 * (shifted.len() / 3);
            if end > start && end - start >= MIN_ALIGNED_CHARS {
                needles.push(Zeroizing::new(encoded[start..end].to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};

    fn r(text: &str, values: &[&str]) -> Result<String, &'static str> {
        let v: Vec<&[u8]> = values.iter().map(|s| s.as_bytes()).collect();
        redact(text, &v)
    }

    #[test]
    fn a_plain_value_is_removed_in_every_form() {
        let v = "s3cr3t-Value/with+chars";
        for form in [
            v.to_string(),
            STANDARD.encode(v),
            STANDARD_NO_PAD.encode(v),
            URL_SAFE.encode(v),
            hex::encode(v),
            hex::encode_upper(v),
        ] {
            let out = r(&format!("failed: {form} (end)"), &[v]).unwrap();
            assert!(!out.contains(&form), "{form} survived: {out}");
            assert!(out.starts_with("failed: [redacted]"), "{out}");
            assert!(out.ends_with(" (end)"), "{out}");
        }
    }

    #[test]
    fn json_leaves_at_any_depth_are_removed_and_names_kept() {
        let value = r#"{"db":{"password":"Nested-Pa55","hosts":["db1.internal",{"port":54321}]},"api_key":"k-123456","on":true}"#;
        let text = "error: password Nested-Pa55 for db1.internal:54321 with k-123456 rejected";
        let out = r(text, &[value]).unwrap();
        assert_eq!(
            out,
            "error: password [redacted] for [redacted]:[redacted] with [redacted] rejected"
        );
    }

    #[test]
    fn escaped_and_embedded_encodings_are_removed() {
        let value = r#"{"password":"quote\"back\\slash-ünï"}"#;
        let pw = "quote\"back\\slash-ünï";
        let once = serde_json::to_string(pw).unwrap();
        let twice = serde_json::to_string(&once).unwrap();
        for shown in [once.clone(), twice.clone()] {
            let out = r(&format!("got {shown}"), &[value]).unwrap();
            assert!(!out.contains("slash"), "{out}");
        }
        // The value inside a longer base64 text, at each alignment.
        for prefix in ["", "x", "xy", "xyz"] {
            let blob = STANDARD.encode(format!("{prefix}{{\"pw\":\"{pw}\"}} and more"));
            let out = r(&format!("blob {blob}"), &[value]).unwrap();
            assert!(out.contains(MARK), "{prefix:?}: {out}");
            let middle = &STANDARD_NO_PAD.encode(pw.as_bytes())[4..16];
            assert!(!out.contains(middle), "{prefix:?}: {out}");
        }
    }

    #[test]
    fn the_whole_raw_value_and_every_version_are_searched() {
        let out = r(
            "old=previous-pw new=pending-pw raw={\"a\":\"xyz\"}",
            &["previous-pw", "pending-pw", "{\"a\":\"xyz\"}"],
        )
        .unwrap();
        assert_eq!(out, "old=[redacted] new=[redacted] raw=[redacted]");
    }

    #[test]
    fn binary_values_are_searched_by_their_encodings() {
        let bin: &[u8] = &[0xff, 0x00, 0x10, 0x80, b'a', b'b', b'c', b'd'];
        let text = format!("{} / {}", STANDARD.encode(bin), hex::encode(bin));
        let out = redact(&text, &[bin]).unwrap();
        assert_eq!(out, "[redacted]= / [redacted]", "{out}");
    }

    #[test]
    fn what_cannot_be_checked_is_refused() {
        assert!(r("x", &["ab"]).is_err(), "a two-character value");
        assert!(r("x", &[r#"{"password":"ab"}"#]).is_err(), "a short leaf");
        assert!(r("x", &[r#""ab""#]).is_err(), "a short JSON string");
        assert!(redact("x", &[&[0xff, 0xfe]]).is_err(), "short binary");
        let long = "a".repeat(MAX_TEXT_BYTES + 1);
        assert!(r(&long, &["secret-value"]).is_err(), "too long to search");
    }

    #[test]
    fn short_numbers_booleans_and_empty_strings_are_not_values_to_search() {
        let value = r#"{"port":22,"ssl":true,"note":"","password":"long-enough"}"#;
        assert_eq!(
            r("port 22 refused; ssl true", &[value]).unwrap(),
            "port 22 refused; ssl true"
        );
        assert_eq!(r("[] {}", &["{}", "[]"]).unwrap(), "[] {}");
    }

    #[test]
    fn a_value_inside_another_is_replaced_with_the_longer_one() {
        let out = r("abcdef-123 and abcdef", &["abcdef", "abcdef-123"]).unwrap();
        assert_eq!(out, "[redacted] and [redacted]");
    }

    #[test]
    fn text_without_values_is_unchanged() {
        assert_eq!(
            r(
                "f exited with status 1: connection refused",
                &["hunter2-pw"]
            )
            .unwrap(),
            "f exited with status 1: connection refused"
        );
    }
}
