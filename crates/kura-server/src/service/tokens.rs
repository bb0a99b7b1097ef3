//! Pagination tokens: opaque to clients, signed so a forged or altered one is refused, and bound
//! to the query that issued them so a token from another query is refused too.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use kura_core::{Error, ErrorCode, Result};

use super::Service;

/// `MaxResults`: 1–100, default 100.
pub(crate) fn page_size(max_results: Option<i64>) -> Result<usize> {
    match max_results {
        None => Ok(100),
        Some(n @ 1..=100) => Ok(n as usize),
        Some(n) => Err(Error::invalid_parameter(format!(
            "MaxResults must be between 1 and 100; got {n}."
        ))),
    }
}

pub(crate) fn invalid() -> Error {
    Error::new(
        ErrorCode::InvalidNextToken,
        "NextToken is not one this server issued for this query (it was altered, or the query's filters or sort changed); start again without NextToken.",
    )
}

impl Service {
    /// `query` identifies the request's shape (filters, sort); `position` where the page ended.
    pub(crate) fn issue_token(&self, query: &str, position: serde_json::Value) -> String {
        let payload = serde_json::json!({"q": query, "p": position}).to_string();
        let tag = self.token_key.sign(payload.as_bytes());
        format!("{}.{}", B64.encode(&payload), B64.encode(tag))
    }

    pub(crate) fn redeem_token(&self, query: &str, token: &str) -> Result<serde_json::Value> {
        let (payload, tag) = token.split_once('.').ok_or_else(invalid)?;
        let payload = B64.decode(payload).map_err(|_| invalid())?;
        let tag = B64.decode(tag).map_err(|_| invalid())?;
        if !self.token_key.verify(&payload, &tag) {
            return Err(invalid());
        }
        let mut doc: serde_json::Value = serde_json::from_slice(&payload).map_err(|_| invalid())?;
        if doc["q"] != query {
            return Err(invalid());
        }
        Ok(doc["p"].take())
    }
}
