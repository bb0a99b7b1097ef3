//! Operator tasks that go through the pipeline like any request (authorized, audited).

use std::sync::Arc;

use kura_core::{Error, ErrorCode, Result};

use super::types::{Empty, RotateRootKeyResponse};
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

    /// `Kura.RotateRootKey`: a new root key; every key-encryption key is re-wrapped under it
    /// and the seal keeps it, in one transaction, while requests go on. Root only.
    pub async fn rotate_root_key(&self, c: &Caller, _: Empty) -> Result<RotateRootKeyResponse> {
        if !c.is_administrator() {
            return Err(Error::new(
                ErrorCode::AccessDenied,
                "Only the root user may rotate the root key.",
            ));
        }
        let Some(keeper) = self.root_keeper.get() else {
            return Err(Error::invalid_request(
                "This kura was started without a seal that can keep a new root key.",
            ));
        };
        let done = keeper
            .rotate(self.store.as_ref(), &self.keyring, self.clock.now().0)
            .await?;
        Ok(RotateRootKeyResponse {
            seal_type: done.seal_type.to_string(),
            keys_rewrapped: done.keys_rewrapped as i64,
            root_key_generation: done.generation,
        })
    }

    /// The root key generation this node holds, when it keeps one.
    pub fn root_key_generation(&self) -> Option<i64> {
        self.root_keeper.get().map(|k| k.generation())
    }

    /// Catches up with a root key rotation another node made, now rather than at the next
    /// periodic check: for a caller that found a stored key that does not open with this
    /// node's root key (a key-encryption key written after a rotation elsewhere).
    pub async fn follow_root(&self) -> Result<()> {
        match self.root_keeper.get() {
            Some(keeper) => {
                keeper
                    .follow(self.store.as_ref(), &self.keyring, self.clock.now().0)
                    .await
            }
            None => Ok(()),
        }
    }

    /// Gives the node's root key custody to `Kura.RotateRootKey`, and follows rotations
    /// other nodes make (checked every few seconds: one setting read).
    pub(crate) fn keep_root(self: &Arc<Self>, keeper: Arc<crate::rootkey::RootKeeper>) {
        let _ = self.root_keeper.set(keeper);
        let svc = Arc::downgrade(self);
        tokio::spawn(async move {
            // The same failure is logged once, not every few seconds.
            let mut last_failure: Option<String> = None;
            loop {
                tokio::time::sleep(crate::rootkey::CHECK_INTERVAL).await;
                let Some(svc) = svc.upgrade() else { return };
                match svc.follow_root().await {
                    Ok(()) => last_failure = None,
                    Err(e) => {
                        if last_failure.as_deref() != Some(e.message.as_str()) {
                            tracing::warn!(detail = %e.message, "cannot follow the installation's root key");
                        }
                        last_failure = Some(e.message);
                    }
                }
            }
        });
    }

    /// Lets `Kura.Seal` wake the node through `requests`.
    pub(crate) fn allow_sealing(&self, requests: Arc<tokio::sync::Notify>) {
        let _ = self.seal_requests.set(requests);
    }
}
