-- OAuth login state (issue 4): the server-wide secret that signs `state`, and the pending logins the
-- states stand for. Released migrations are never edited; add a new file.

-- Secrets the server generates once and shares through the database, so every replica on one database
-- signs and verifies alike. `name` says what the secret is for (`oauth_state`); `value` is hex.
CREATE TABLE server_secrets (
    name          TEXT   NOT NULL PRIMARY KEY,
    value         TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- One login in progress. WeChat and WeCom allow only 128 characters of [a-zA-Z0-9] in `state`, too
-- little for a return_to URL, so the `state` sent upstream is the nonce and its HMAC, and what the login
-- needs afterwards (provider, app, return_to, flow) waits here as JSON. `consumed_at_ms` is set by the
-- one callback that uses it; a replay finds it set. Rows past `expires_at_ms` are pruned as new logins
-- start.
CREATE TABLE oauth_states (
    tenant         TEXT   NOT NULL,
    nonce          TEXT   NOT NULL,
    payload        TEXT   NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    expires_at_ms  BIGINT NOT NULL,
    consumed_at_ms BIGINT,
    PRIMARY KEY (tenant, nonce)
);
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at_ms);
