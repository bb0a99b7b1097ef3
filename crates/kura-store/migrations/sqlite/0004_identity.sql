-- Users' tags (aws:PrincipalTag/...) and inline identity policies.
ALTER TABLE users ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';

CREATE TABLE user_policies (
    user_name   TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    policy_name TEXT NOT NULL,
    document    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (user_name, policy_name)
);
