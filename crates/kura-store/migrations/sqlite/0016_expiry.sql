-- Expiry of secrets (Kura.SetSecretExpiration, or a certificate's own): when the secret
-- expires, and when its next expiry notice (SecretExpiring, SecretExpired) is due.
ALTER TABLE secrets ADD COLUMN expires_at INTEGER;
ALTER TABLE secrets ADD COLUMN expiry_notice_at INTEGER;
CREATE INDEX secrets_expires ON secrets(expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX secrets_expiry_notice ON secrets(expiry_notice_at) WHERE expiry_notice_at IS NOT NULL;
