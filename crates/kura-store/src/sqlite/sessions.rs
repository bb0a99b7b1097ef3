//! Web console sessions: the shared SQL (`sql::sessions`), in write turns.

use super::*;
use crate::sql::sessions;
use crate::{SessionCutoff, SessionRecord};

#[async_trait]
impl SessionStore for SqliteStore {
    async fn open_session(
        &self,
        s: &SessionRecord,
        cutoff: SessionCutoff,
        max: i64,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let opened = sessions::open(&mut *tx, s, cutoff, max).await?;
        tx.commit(Vec::new()).await?;
        Ok(opened)
    }

    async fn use_session(
        &self,
        id: &str,
        cutoff: SessionCutoff,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>> {
        let Some(s) = sessions::get(&mut *self.read().await?, id).await? else {
            return Ok(None);
        };
        let mut tx = self.begin_write().await?;
        let live = !sessions::ended(&s, cutoff);
        if live {
            sessions::touch(&mut *tx, id, now).await?;
        } else {
            sessions::end(&mut *tx, id).await?;
        }
        tx.commit(Vec::new()).await?;
        Ok(live.then_some(s))
    }

    async fn end_session(&self, id: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sessions::end(&mut *tx, id).await?;
        tx.commit(Vec::new()).await
    }
}
