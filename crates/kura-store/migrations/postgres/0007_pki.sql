-- Private certificate authorities (Kura.CreateCertificateAuthority). The key is sealed by the
-- keyring (never returned); `certificate` is empty while an intermediate waits for an external
-- root to sign its `csr`. `chain` holds the certificates above this one, root excluded.
CREATE TABLE pki_authorities (
    name          TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    parent        TEXT,
    common_name   TEXT NOT NULL,
    key_algorithm TEXT NOT NULL,
    certificate   TEXT,
    chain         TEXT NOT NULL DEFAULT '',
    csr           TEXT,
    not_after     BIGINT,
    ciphertext    BYTEA NOT NULL,
    wrapped_key   BYTEA NOT NULL,
    key_name      TEXT NOT NULL,
    key_version   BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);

-- Certificate templates: the CA that signs, and the rules (JSON).
CREATE TABLE pki_templates (
    name       TEXT PRIMARY KEY,
    authority  TEXT NOT NULL,
    config     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX pki_templates_authority ON pki_templates(authority);

-- Every certificate a CA issued (no key, no certificate body): what revocation and the CRL need.
CREATE TABLE pki_certificates (
    authority   TEXT NOT NULL,
    serial      TEXT NOT NULL,
    template    TEXT,
    common_name TEXT NOT NULL,
    secret_arn  TEXT,
    issued_at   BIGINT NOT NULL,
    not_after   BIGINT NOT NULL,
    revoked_at  BIGINT,
    PRIMARY KEY (authority, serial)
);
CREATE INDEX pki_certificates_revoked ON pki_certificates(authority, revoked_at);
