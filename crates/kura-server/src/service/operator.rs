//! Operator tasks that go through the pipeline like any request (authorized, audited).

use std::sync::Arc;

use kura_core::{Error, ErrorCode, Result};

use super::types::Empty;
use super::{Caller, Service};

impl Service {
    /// `Kura.Seal`: the node forgets its keys and answers nothing until it is unsealed again.
    /// Root only, whatever policies say: it stops the service for everyone.
    pub async fn seal_node(&self, c: &Caller, _: Empty) -> Result<Empty> {
        if !c.is_administrator() {
            return Err(Error::new(
                ErrorCode::AccessDenied,
                "Only the root user may seal kura.",
            ));
        }
        let Some(requests) = self.seal_requests.get() else {
            return Err(Error::invalid_request(
                "This kura unseals itself when it starts (seal `file` or `pkcs11`), so sealing it would last only until a restart. Sealing applies to the `shamir` seal.",
            ));
        };
        requests.notify_one();
        Ok(Empty {})
    }

    /// Lets `Kura.Seal` wake the node through `requests`.
    pub(crate) fn allow_sealing(&self, requests: Arc<tokio::sync::Notify>) {
        let _ = self.seal_requests.set(requests);
    }
}
