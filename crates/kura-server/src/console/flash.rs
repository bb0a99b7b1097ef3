//! The message a form's outcome leaves for the page its redirect shows ("Created the secret
//! x."). It travels in a short-lived cookie rather than the session record, so showing it
//! costs no database write and any node of a cluster can show it. The cookie is signed with
//! the session's CSRF token: another site (or a sibling domain's cookie) cannot plant a
//! message, and one session's message means nothing to another.

use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A message for the next page a session sees.
#[derive(Debug, Clone)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

const COOKIE: &str = "kura_flash";
/// Longer messages are cut, so the cookie stays well inside a browser's 4 KB.
const MAX_TEXT: usize = 1500;

/// What the handler of one request did with the message: set one for the next page (the
/// cookie's value), or showed the one the request carried.
#[derive(Default)]
struct Outcome {
    set: Option<String>,
    shown: bool,
}

/// Shared between the request's handler (through `Ctx`) and [`carry`], which writes the
/// cookie on the way out.
#[derive(Clone, Default)]
pub(crate) struct Slot(Arc<Mutex<Outcome>>);

impl Slot {
    fn with<T>(&self, f: impl FnOnce(&mut Outcome) -> T) -> T {
        // A poisoned lock only means a handler panicked; the outcome is still sound.
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Leaves `flash` for the next page, signed with the session's CSRF token.
    pub(crate) fn set(&self, csrf: &str, flash: &Flash) {
        let mut text = flash.text.as_str();
        if text.len() > MAX_TEXT {
            let mut end = MAX_TEXT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text = &text[..end];
        }
        let payload = format!("{}{text}", if flash.ok { '1' } else { '0' });
        let payload = URL_SAFE_NO_PAD.encode(payload);
        let value = format!("{payload}.{}", mac(csrf, &payload));
        self.with(|o| o.set = Some(value));
    }

    /// The message the request carried, if it was signed for this session; it is shown once.
    pub(crate) fn take(&self, headers: &HeaderMap, csrf: &str) -> Option<Flash> {
        let value = super::cookie(headers, COOKIE)?;
        let (payload, tag) = value.split_once('.')?;
        let expected = mac(csrf, payload);
        aws_lc_rs::constant_time::verify_slices_are_equal(tag.as_bytes(), expected.as_bytes())
            .ok()?;
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let ok = text.starts_with('1');
        self.with(|o| o.shown = true);
        Some(Flash {
            ok,
            text: text.get(1..).unwrap_or_default().to_string(),
        })
    }
}

fn mac(csrf: &str, payload: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, csrf.as_bytes());
    URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&key, payload.as_bytes()))
}

/// Gives each console request a [`Slot`], then sets the cookie the handler asked for, or
/// clears the one it showed.
pub(crate) async fn carry(mut req: Request, next: Next) -> Response {
    let slot = Slot::default();
    req.extensions_mut().insert(slot.clone());
    let secure = if crate::http::is_tls(req.extensions()) {
        "; Secure"
    } else {
        ""
    };
    let mut resp = next.run(req).await;
    let cookie = slot.with(|o| match (o.set.take(), o.shown) {
        // A minute is plenty for the redirect that follows; an unshown message then lapses.
        (Some(v), _) => Some(format!(
            "{COOKIE}={v}; Path=/console; HttpOnly; SameSite=Strict; Max-Age=60{secure}"
        )),
        (None, true) => Some(format!(
            "{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
        )),
        (None, false) => None,
    });
    if let Some(v) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}
