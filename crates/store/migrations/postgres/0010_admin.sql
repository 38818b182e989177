-- Admin UI sign-in (issue 6): operator sessions and one-time sign-in links. Released migrations are never
-- edited; add a new file.

-- One signed-in operator. Only the SHA-256 (hex) of the cookie's token is stored. `kind` says how the
-- operator signed in: the bootstrap admin token, a one-time link (`wxbridge admin link`, `wxbridge demo`),
-- or WeCom login as a member the tenant's [admin] settings name (then `user_id` is that member's user).
-- `tenant_scope` is `*` (every tenant) or one tenant key. `csrf` is the value the UI must echo in
-- X-CSRF-Token on every non-GET request; it is useless without the cookie. Rows past `expires_at_ms` are
-- pruned as new sessions start.
CREATE TABLE admin_sessions (
    token_hash    TEXT    NOT NULL PRIMARY KEY,
    kind          TEXT    NOT NULL CHECK (kind IN ('token', 'link', 'wecom')),
    name          TEXT    NOT NULL,
    tenant_scope  TEXT    NOT NULL,
    user_id       BIGINT  REFERENCES users (id),
    csrf          TEXT    NOT NULL,
    created_at_ms BIGINT  NOT NULL,
    expires_at_ms BIGINT  NOT NULL
);
CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at_ms);

-- A one-time sign-in link: only the SHA-256 (hex) of its `wxl_` token is stored. `consumed_at_ms` is
-- set by the one sign-in that uses it; a second visit finds it set. Kept a day past expiry so a late
-- visit is told "expired" rather than "unknown", then pruned.
CREATE TABLE admin_login_links (
    token_hash     TEXT    NOT NULL PRIMARY KEY,
    tenant_scope   TEXT    NOT NULL,
    created_at_ms  BIGINT  NOT NULL,
    expires_at_ms  BIGINT  NOT NULL,
    consumed_at_ms BIGINT
);
CREATE INDEX admin_login_links_expiry ON admin_login_links (expires_at_ms);
