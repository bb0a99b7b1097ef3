-- The words a secret can be found by with ListSecrets' `description` and `all` filters,
-- lower-cased by kura_core::filter::words (field 1: the description; 0: the name, a tag key
-- or value). kura writes them with every change to those fields and fills them for existing
-- secrets when this migration runs, so SQL matches exactly what the Rust matcher does.
CREATE TABLE secret_words (
    secret_id INTEGER NOT NULL REFERENCES secrets(id) ON DELETE CASCADE,
    field     INTEGER NOT NULL,
    word      TEXT NOT NULL,
    PRIMARY KEY (secret_id, field, word)
) WITHOUT ROWID;
CREATE INDEX secret_words_word ON secret_words(word, secret_id);
