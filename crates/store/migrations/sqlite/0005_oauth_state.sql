-- OAuth login state (issue 4): the server-wide secret that signs `state`, and the nonces of states
-- already used, so a state is accepted once. Released migrations are never edited; add a new file.

-- Secrets the server generates once and shares through the database, so every replica on one database
-- signs and verifies alike. `name` says what the secret is for (`oauth_state`); `value` is hex.
CREATE TABLE server_secrets (
    name          TEXT   NOT NULL PRIMARY KEY,
    value         TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- A nonce is inserted when its state is consumed by a callback; a second insert conflicts, so a
-- replayed state is refused. Rows past `expires_at_ms` are useless (the state itself has expired) and
-- are pruned as new nonces arrive.
CREATE TABLE oauth_state_nonces (
    tenant         TEXT   NOT NULL,
    nonce          TEXT   NOT NULL,
    expires_at_ms  BIGINT NOT NULL,
    consumed_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, nonce)
);
CREATE INDEX oauth_state_nonces_expiry ON oauth_state_nonces (expires_at_ms);
