//! Form bodies: `application/x-www-form-urlencoded`, and `multipart/form-data` for the forms
//! that upload a file. The body is read whole first (bounded by [`MAX_FORM_BYTES`]), so the
//! multipart reader is a plain split on the boundary (RFC 7578), with nothing streamed.

use axum::http::{HeaderMap, header};
use zeroize::Zeroizing;

use super::Params;

/// The largest form the console reads: room for a 64 KiB value and the rest of the form.
pub(crate) const MAX_FORM_BYTES: usize = 1024 * 1024;

/// A file sent with a form. Its bytes may be a secret value: zeroized when dropped, and never
/// in `Debug`.
pub(crate) struct Upload {
    pub field: String,
    pub filename: String,
    pub content_type: String,
    pub bytes: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("field", &self.field)
            .field("filename", &self.filename)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// A field's text as kura keeps it: browsers send a textarea's line ends as CRLF (HTML's form
/// submission rules), while the keys, certificates and JSON people paste have LF ones. Every
/// field of every form passes here, so no page converts them itself. Files are kept byte for
/// byte.
pub(crate) fn field_text(text: String) -> Zeroizing<String> {
    if !text.contains('\r') {
        return Zeroizing::new(text);
    }
    let text = Zeroizing::new(text);
    Zeroizing::new(text.replace("\r\n", "\n"))
}

/// The fields (and files) of a form body, by its `Content-Type`.
pub(crate) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Params, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "multipart/form-data" {
        return Ok(Params::parse(body));
    }
    let boundary = parameter(content_type, "boundary")
        .filter(|b| !b.is_empty() && b.len() <= 200)
        .ok_or("The form's multipart body names no boundary.")?;
    multipart(&boundary, body)
}

/// The parameter `name` of a header value such as `form-data; name="a"; filename="b.txt"`,
/// unquoted (a quoted value may hold `;`).
fn parameter(value: &str, name: &str) -> Option<String> {
    let mut rest = value.split_once(';')?.1;
    loop {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim();
        let after = after.trim_start();
        let (v, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            out.push(e);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => out.push(c),
                }
            }
            let rest = &quoted[end?..];
            (out, rest.split_once(';').map(|(_, r)| r))
        } else {
            match after.split_once(';') {
                Some((v, r)) => (v.trim().to_string(), Some(r)),
                None => (after.trim().to_string(), None),
            }
        };
        if key.eq_ignore_ascii_case(name) {
            return Some(v);
        }
        rest = next?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn multipart(boundary: &str, body: &[u8]) -> Result<Params, String> {
    const BROKEN: &str =
        "The form's multipart body is cut short or malformed: submit the form again.";
    let delimiter = format!("\r\n--{boundary}");
    let first = &delimiter.as_bytes()[2..];
    let start = find(body, first).ok_or(BROKEN)?;
    let mut rest = &body[start + first.len()..];
    let mut params = Params::default();
    loop {
        if rest.starts_with(b"--") {
            return Ok(params);
        }
        rest = rest.strip_prefix(b"\r\n").ok_or(BROKEN)?;
        let end = find(rest, b"\r\n\r\n").ok_or(BROKEN)?;
        let head = std::str::from_utf8(&rest[..end]).map_err(|_| BROKEN)?;
        rest = &rest[end + 4..];
        let end = find(rest, delimiter.as_bytes()).ok_or(BROKEN)?;
        let content = &rest[..end];
        rest = &rest[end + delimiter.len()..];
        let mut disposition = None;
        let mut content_type = String::new();
        for line in head.split("\r\n") {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("content-disposition") {
                disposition = Some(value.trim().to_string());
            } else if name.trim().eq_ignore_ascii_case("content-type") {
                content_type = value.trim().to_string();
            }
        }
        let disposition = disposition.ok_or(BROKEN)?;
        let field = parameter(&disposition, "name").ok_or(BROKEN)?;
        match parameter(&disposition, "filename") {
            Some(filename) => {
                // A file input left empty still sends its part, with no name and no bytes.
                if filename.is_empty() && content.is_empty() {
                    continue;
                }
                params.files.push(Upload {
                    field,
                    filename,
                    content_type,
                    bytes: Zeroizing::new(content.to_vec()),
                });
            }
            None => {
                let text = String::from_utf8(content.to_vec())
                    .map_err(|_| format!("The form field {field:?} is not UTF-8 text."))?;
                params.fields.push((field, field_text(text)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multipart_headers(boundary: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}")
                .parse()
                .unwrap(),
        );
        h
    }

    #[test]
    fn fields_and_a_file() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc\r\n\
            --XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nprod/db\r\n\
            --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a;b \\\"c\\\".json\"\r\nContent-Type: application/json\r\n\r\n{\"k\":\r\n\"v\"}\r\n\
            --XyZ\r\nContent-Disposition: form-data; name=\"empty\"; filename=\"\"\r\nContent-Type: application/octet-stream\r\n\r\n\r\n\
            --XyZ--\r\n";
        let p = parse(&multipart_headers("XyZ"), body.as_bytes()).unwrap();
        assert_eq!(p.get("csrf"), "abc");
        assert_eq!(p.get("name"), "prod/db");
        let f = p.file("file").unwrap();
        assert_eq!(f.filename, "a;b \"c\".json");
        assert_eq!(f.content_type, "application/json");
        assert_eq!(&f.bytes[..], b"{\"k\":\r\n\"v\"}");
        assert!(p.file("empty").is_none(), "an empty file input is no file");
    }

    #[test]
    fn a_body_cut_short_is_refused() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc";
        assert!(parse(&multipart_headers("XyZ"), body.as_bytes()).is_err());
        assert!(parse(&multipart_headers("XyZ"), b"no boundary here").is_err());
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "multipart/form-data".parse().unwrap());
        assert!(parse(&h, b"").is_err());
    }

    #[test]
    fn a_fields_crlf_line_ends_become_lf_and_a_files_are_kept() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"text\"\r\n\r\na\r\nb\r\n\r\n\
            --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.txt\"\r\n\r\nx\r\ny\r\n\
            --XyZ--\r\n";
        let p = parse(&multipart_headers("XyZ"), body.as_bytes()).unwrap();
        assert_eq!(p.get("text"), "a\nb\n");
        assert_eq!(&p.file("file").unwrap().bytes[..], b"x\r\ny");
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let p = parse(&h, b"v=one%0D%0Atwo%0D%0A&w=lone%0Dcr").unwrap();
        assert_eq!(p.get("v"), "one\ntwo\n");
        assert_eq!(
            p.get("w"),
            "lone\rcr",
            "a lone CR is not a line end a browser made"
        );
    }

    #[test]
    fn urlencoded_bodies_are_read_as_before() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let p = parse(&h, b"a=1&b=x%20y").unwrap();
        assert_eq!(p.get("b"), "x y");
    }
}
