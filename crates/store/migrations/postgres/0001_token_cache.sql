-- Token cache and refresh leases (PostgreSQL). Released migrations are never edited; add a new file instead.
--
-- The key is the four parts of wx_api::token::TokenKey as separate columns rather than the flat
-- `cache_key()` string, so no choice of characters in a tenant or owner can make two keys collide.
-- The primary key leads with `tenant`, which doubles as the tenant index.

CREATE TABLE token_cache (
    tenant        TEXT   NOT NULL,
    owner         TEXT   NOT NULL,
    secret_id     TEXT   NOT NULL,
    kind          TEXT   NOT NULL,
    -- A short-lived bearer token, stored as given (see SqlTokenStore for why it is not encrypted).
    value         TEXT   NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    -- Bumped on every put so replicas and operators can tell a refresh happened.
    version       BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant, owner, secret_id, kind)
);

-- Who may refresh a token right now. A row whose expires_at_ms is in the past (by the caller's clock)
-- is free to take.
CREATE TABLE token_lease (
    tenant        TEXT   NOT NULL,
    owner         TEXT   NOT NULL,
    secret_id     TEXT   NOT NULL,
    kind          TEXT   NOT NULL,
    holder        TEXT   NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tenant, owner, secret_id, kind)
);
