//! Certificate authorities, templates and issued certificates: the shared SQL (`sql::pki`).

use super::*;
use crate::{AcmeAccountRecord, AuthorityRecord, IssuedCertificateRecord, TemplateRecord};

#[async_trait]
impl PkiStore for SqliteStore {
    async fn insert_authority(&self, a: &AuthorityRecord, audit: &AuditSlot) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sql::pki::insert_authority(&mut *tx, a).await?;
        self.commit_change(tx, Changed::default(), audit).await
    }

    async fn authority(&self, name: &str) -> Result<Option<AuthorityRecord>> {
        sql::pki::authority(&mut *self.read().await?, name).await
    }

    async fn list_authorities(&self) -> Result<Vec<AuthorityRecord>> {
        sql::pki::list_authorities(&mut *self.read().await?).await
    }

    async fn set_authority_certificate(
        &self,
        name: &str,
        certificate: &str,
        chain: &str,
        not_after: Timestamp,
        audit: &AuditSlot,
    ) -> Result<bool> {
        let s = sql::pki::set_authority_certificate(name, certificate, chain, not_after);
        Ok(self.write(s, Some((Changed::default(), audit))).await? == 1)
    }

    async fn delete_authority(&self, name: &str, audit: &AuditSlot) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let deleted = sql::pki::delete_authority(&mut *tx, name).await?;
        self.commit_change(tx, Changed::default(), audit).await?;
        Ok(deleted)
    }

    async fn insert_template(&self, t: &TemplateRecord, audit: &AuditSlot) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sql::pki::insert_template(&mut *tx, t).await?;
        self.commit_change(tx, Changed::default(), audit).await
    }

    async fn template(&self, name: &str) -> Result<Option<TemplateRecord>> {
        sql::pki::template(&mut *self.read().await?, name).await
    }

    async fn list_templates(&self) -> Result<Vec<TemplateRecord>> {
        sql::pki::list_templates(&mut *self.read().await?).await
    }

    async fn delete_template(&self, name: &str, audit: &AuditSlot) -> Result<bool> {
        let s = sql::pki::delete_template(name);
        Ok(self.write(s, Some((Changed::default(), audit))).await? == 1)
    }

    async fn insert_certificate(&self, c: &IssuedCertificateRecord) -> Result<()> {
        self.write(sql::pki::insert_certificate(c), None).await?;
        Ok(())
    }

    async fn certificate(
        &self,
        authority: &str,
        serial: &str,
    ) -> Result<Option<IssuedCertificateRecord>> {
        sql::pki::certificate(&mut *self.read().await?, authority, serial).await
    }

    async fn revoke_certificate(
        &self,
        authority: &str,
        serial: &str,
        at: Timestamp,
        audit: &AuditSlot,
    ) -> Result<bool> {
        let s = sql::pki::revoke_certificate(authority, serial, at);
        Ok(self.write(s, Some((Changed::default(), audit))).await? == 1)
    }

    async fn revoked_certificates(
        &self,
        authority: &str,
        now: Timestamp,
    ) -> Result<Vec<(String, Timestamp)>> {
        sql::pki::revoked_certificates(&mut *self.read().await?, authority, now).await
    }

    async fn acme_account(
        &self,
        directory_url: &str,
        email: &str,
    ) -> Result<Option<AcmeAccountRecord>> {
        sql::pki::acme_account(&mut *self.read().await?, directory_url, email).await
    }

    async fn insert_acme_account(&self, a: &AcmeAccountRecord) -> Result<bool> {
        Ok(self.write(sql::pki::insert_acme_account(a), None).await? == 1)
    }
}
