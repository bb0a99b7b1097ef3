//! `webhook` functions: each step's event POSTed, signed, to a URL. The signature is also how
//! kura signs its notifications.

use std::time::Duration;

use kura_core::Timestamp;
use kura_crypto::mac::MacKey;
use zeroize::Zeroizing;

use crate::function::{
    RotationFunction, Settings, StepContext, StepFailure, StepFuture, StepRequest,
};

pub struct WebhookFunction {
    settings: Settings,
    url: String,
    signing_secret: Zeroizing<Vec<u8>>,
}

impl WebhookFunction {
    pub fn new(settings: Settings, url: String, signing_secret: Zeroizing<Vec<u8>>) -> Self {
        WebhookFunction {
            settings,
            url,
            signing_secret,
        }
    }
}

impl RotationFunction for WebhookFunction {
    fn settings(&self) -> &Settings {
        &self.settings
    }

    fn run_step<'a>(
        &'a self,
        ctx: &'a dyn StepContext,
        req: StepRequest<'a>,
    ) -> StepFuture<'a, Result<(), StepFailure>> {
        Box::pin(async move {
            let body = ctx.event_json(req.step);
            post_signed(
                ctx.http(),
                ctx.now(),
                &self.url,
                &self.signing_secret,
                "rotation.step",
                body,
            )
            .await
            .map_err(|e| {
                StepFailure::of(&self.settings.name, format!("{e} at {}", req.step.as_str()))
            })
        })
    }

    fn call<'a>(
        &'a self,
        ctx: &'a dyn StepContext,
        body: String,
    ) -> Option<StepFuture<'a, Result<(), StepFailure>>> {
        Some(Box::pin(async move {
            post_signed(
                ctx.http(),
                ctx.now(),
                &self.url,
                &self.signing_secret,
                "acme.dns",
                body,
            )
            .await
            .map_err(|e| StepFailure::of(&self.settings.name, e))
        }))
    }
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`, as kura signs webhooks and events.
pub fn signature_header(secret: &[u8], now: Timestamp, body: &[u8]) -> String {
    let t = now.0.div_euclid(1000);
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    format!(
        "t={t},v1={}",
        hex::encode(MacKey::new(secret).sign(&signed))
    )
}

/// POSTs a signed JSON body of `kind` (`kura-event`); Ok on any 2xx.
pub async fn post_signed(
    http: &reqwest::Client,
    now: Timestamp,
    url: &str,
    secret: &[u8],
    kind: &str,
    body: String,
) -> Result<(), String> {
    let sig = signature_header(secret, now, body.as_bytes());
    let resp = http
        .post(url)
        .timeout(Duration::from_secs(30))
        .header("content-type", "application/json")
        .header("kura-event", kind)
        .header("kura-signature", sig)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("webhook {url} unreachable ({})", error_kind(&e)))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "webhook {url} answered HTTP {}",
            resp.status().as_u16()
        ))
    }
}

/// What went wrong with a request, without reqwest's full text (which repeats the URL).
fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
}
