-- ACME accounts (the kura-acme-certificate rotation), one per directory and contact email:
-- created on first use, reused afterwards. `ciphertext` is instant-acme's account credentials
-- (the account URL and its private key), sealed by the keyring like a CA's key.
CREATE TABLE acme_accounts (
    directory_url TEXT NOT NULL,
    email         TEXT NOT NULL,
    ciphertext    BLOB NOT NULL,
    wrapped_key   BLOB NOT NULL,
    key_name      TEXT NOT NULL,
    key_version   INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (directory_url, email)
);
