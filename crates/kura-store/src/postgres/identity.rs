//! Users, access keys and inline policies: the shared SQL (`sql::identity`) in PostgreSQL's
//! transactions, retried on a conflict.

use super::*;

impl PgStore {
    async fn delete_user_once(&self, name: &str, audit: &AuditSlot) -> Result<bool> {
        let mut tx = self.begin().await?;
        let deleted = sql::identity::delete_user(&mut *tx, name).await?;
        self.commit_change(tx, Changed::default(), audit).await?;
        Ok(deleted)
    }

    async fn insert_access_key_once(
        &self,
        k: &AccessKeyRecord,
        max: Option<usize>,
        audit: &AuditSlot,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sql::identity::insert_access_key(&mut *tx, k, max).await?;
        self.commit_change(tx, Changed::default(), audit).await
    }
}

#[async_trait]
impl IdentityStore for PgStore {
    async fn create_user(&self, u: &UserRecord, audit: &AuditSlot) -> Result<()> {
        let mut tx = self.begin().await?;
        sql::identity::create_user(&mut *tx, u).await?;
        self.commit_change(tx, Changed::default(), audit).await
    }

    async fn get_user(&self, name: &str) -> Result<Option<UserRecord>> {
        sql::identity::get_user(&mut *self.read().await?, name).await
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>> {
        sql::identity::list_users(&mut *self.read().await?).await
    }

    async fn delete_user(&self, name: &str, audit: &AuditSlot) -> Result<bool> {
        let done = retry!(self.delete_user_once(name, audit));
        self.cache.access_keys_changed();
        done
    }

    async fn user_exists(&self, name: &str) -> Result<bool> {
        sql::identity::user_exists(&mut *self.read().await?, name).await
    }

    async fn insert_access_key(
        &self,
        k: &AccessKeyRecord,
        max: Option<usize>,
        audit: &AuditSlot,
    ) -> Result<()> {
        let done = retry!(self.insert_access_key_once(k, max, audit));
        self.cache.access_key_changed(&k.access_key_id);
        done
    }

    async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKeyRecord>> {
        sql::identity::list_access_keys(&mut *self.read().await?, user).await
    }

    async fn find_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyRecord>> {
        let load =
            async { sql::identity::find_access_key(&mut *self.read().await?, access_key_id).await };
        self.cache.access_key(access_key_id, load).await
    }

    async fn set_access_key_status(
        &self,
        access_key_id: &str,
        active: bool,
        audit: &AuditSlot,
    ) -> Result<bool> {
        let s = sql::identity::set_access_key_status(access_key_id, active);
        let done = self.write(s, Some((Changed::default(), audit))).await;
        self.cache.access_key_changed(access_key_id);
        Ok(done? == 1)
    }

    async fn expire_access_key(
        &self,
        access_key_id: &str,
        at: Timestamp,
        audit: &AuditSlot,
    ) -> Result<bool> {
        let s = sql::identity::expire_access_key(access_key_id, at);
        let done = self.write(s, Some((Changed::default(), audit))).await;
        self.cache.access_key_changed(access_key_id);
        Ok(done? == 1)
    }

    async fn touch_access_key(&self, access_key_id: &str, day: Timestamp) -> Result<()> {
        let s = sql::identity::touch_access_key(access_key_id, day);
        let done = self.write(s, None).await;
        self.cache.access_key_changed(access_key_id);
        done.map(|_| ())
    }

    async fn delete_access_key(&self, access_key_id: &str, audit: &AuditSlot) -> Result<()> {
        let s = sql::identity::delete_access_key(access_key_id);
        let done = self.write(s, Some((Changed::default(), audit))).await;
        self.cache.access_key_changed(access_key_id);
        done.map(|_| ())
    }

    async fn delete_expired_access_keys(&self, now: Timestamp) -> Result<Vec<SweptAccessKey>> {
        let done = async {
            let mut tx = self.begin().await?;
            let swept = sql::identity::delete_expired_access_keys(&mut *tx, now).await?;
            tx.commit().await.map_err(db_err)?;
            Ok(swept)
        }
        .await;
        self.cache.access_keys_changed();
        done
    }

    async fn put_user_policy(
        &self,
        user: &str,
        name: &str,
        document: &str,
        now: Timestamp,
        audit: &AuditSlot,
    ) -> Result<()> {
        let s = sql::identity::put_user_policy(user, name, document, now);
        self.write(s, Some((Changed::default(), audit))).await?;
        Ok(())
    }

    async fn delete_user_policy(&self, user: &str, name: &str, audit: &AuditSlot) -> Result<bool> {
        let s = sql::identity::delete_user_policy(user, name);
        Ok(self.write(s, Some((Changed::default(), audit))).await? == 1)
    }

    async fn user_policies(&self, user: &str) -> Result<Vec<(String, String)>> {
        sql::identity::user_policies(&mut *self.read().await?, user).await
    }
}
