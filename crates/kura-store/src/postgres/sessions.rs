//! Web console sessions: the shared SQL (`sql::sessions`), each statement on its own. The
//! bound on open sessions is approximate across nodes, which is all it needs to be.

use super::*;
use crate::sql::sessions;
use crate::{SessionCutoff, SessionRecord};

#[async_trait]
impl SessionStore for PgStore {
    async fn open_session(
        &self,
        s: &SessionRecord,
        cutoff: SessionCutoff,
        max: i64,
    ) -> Result<bool> {
        sessions::open(&mut *self.read().await?, s, cutoff, max).await
    }

    async fn use_session(
        &self,
        id: &str,
        cutoff: SessionCutoff,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>> {
        let mut conn = self.read().await?;
        let Some(s) = sessions::get(&mut *conn, id).await? else {
            return Ok(None);
        };
        if sessions::ended(&s, cutoff) {
            sessions::end(&mut *conn, id).await?;
            return Ok(None);
        }
        sessions::touch(&mut *conn, id, now).await?;
        Ok(Some(s))
    }

    async fn end_session(&self, id: &str) -> Result<()> {
        sessions::end(&mut *self.read().await?, id).await
    }
}
