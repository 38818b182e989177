-- Identity: WeChat identities (the account graph), user merges, the operator audit log, encrypted
-- mini-program session keys, and sessions (SQLite). Released migrations are never edited; add a new file.
--
-- Users are the directory's `users` rows: a person known only through WeChat gets a user with no WeCom
-- link. Every table carries `tenant` and every query filters on it. Timestamps are milliseconds since
-- the epoch supplied by the caller.

-- One WeChat identity: an openid of one app (official account, mini program, website app) of a tenant.
-- openids and unionids are case-sensitive upstream and are stored exactly as received. A unionid joins a
-- person's identities across the apps of one open-platform account; all identities sharing a unionid
-- converge on one user (see user_merges). `pinned`: an operator placed this identity by hand (link or
-- unlink), so automatic convergence never moves it again.
CREATE TABLE wechat_identities (
    id            INTEGER PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    appid         TEXT    NOT NULL,
    app_kind      TEXT    NOT NULL
                  CHECK (app_kind IN ('official_account', 'mini_program', 'website', 'wecom_mini_program')),
    openid        TEXT    NOT NULL,
    unionid       TEXT,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    nickname      TEXT,
    avatar        TEXT,
    pinned        INTEGER NOT NULL DEFAULT 0 CHECK (pinned IN (0, 1)),
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    UNIQUE (tenant, appid, openid)
);
CREATE INDEX wechat_identities_unionid ON wechat_identities (tenant, unionid) WHERE unionid IS NOT NULL;
CREATE INDEX wechat_identities_user ON wechat_identities (tenant, user_id);

-- A mini program's session_key for one identity, kept only on the server and only sealed: `sealed` is
-- the ciphertext (with its nonce and tag) produced by the domain layer under the key named `key_id`,
-- so keys can rotate and rows sealed under an old key are recognisable. Replaced at every login.
CREATE TABLE wechat_session_keys (
    tenant        TEXT    NOT NULL,
    identity_id   INTEGER NOT NULL PRIMARY KEY REFERENCES wechat_identities (id),
    key_id        TEXT    NOT NULL,
    sealed        BLOB    NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

-- One convergence of two users into one: who (actor: 'system' or an operator), when, why, which
-- identities moved (JSON array of wechat_identities ids) and the unionid that joined them. The from-user
-- row is kept (never deleted); its sessions move to the into-user.
CREATE TABLE user_merges (
    id            INTEGER PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    from_user_id  INTEGER NOT NULL REFERENCES users (id),
    into_user_id  INTEGER NOT NULL REFERENCES users (id),
    reason        TEXT    NOT NULL CHECK (reason IN ('unionid', 'manual')),
    unionid       TEXT,
    actor         TEXT    NOT NULL,
    identities    TEXT    NOT NULL,
    at_ms         INTEGER NOT NULL
);
CREATE INDEX user_merges_from ON user_merges (tenant, from_user_id);
CREATE INDEX user_merges_into ON user_merges (tenant, into_user_id);

-- Operators' manual link/unlink of identities. Unlink moves the identity to a new user of its own.
CREATE TABLE identity_audit (
    id            INTEGER PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    at_ms         INTEGER NOT NULL,
    actor         TEXT    NOT NULL,
    action        TEXT    NOT NULL CHECK (action IN ('link', 'unlink')),
    identity_id   INTEGER NOT NULL REFERENCES wechat_identities (id),
    from_user_id  INTEGER NOT NULL REFERENCES users (id),
    to_user_id    INTEGER NOT NULL REFERENCES users (id),
    note          TEXT
);
CREATE INDEX identity_audit_identity ON identity_audit (tenant, identity_id);

-- A login session. The token itself is never stored: `token_hash` is the hex SHA-256 of the whole
-- token text. `provider` says how the person logged in and `app` through which app (a WeCom app name, a
-- WeChat appid, a mini-program key), so a business API can require a given provider or app.
CREATE TABLE sessions (
    id               INTEGER PRIMARY KEY,
    tenant           TEXT    NOT NULL,
    token_hash       TEXT    NOT NULL,
    user_id          INTEGER NOT NULL REFERENCES users (id),
    provider         TEXT    NOT NULL,
    app              TEXT    NOT NULL,
    identity_id      INTEGER REFERENCES wechat_identities (id),
    created_at_ms    INTEGER NOT NULL,
    expires_at_ms    INTEGER NOT NULL,
    last_seen_at_ms  INTEGER NOT NULL,
    revoked_at_ms    INTEGER,
    UNIQUE (tenant, token_hash)
);
CREATE INDEX sessions_user ON sessions (tenant, user_id);
