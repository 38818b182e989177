-- Directory: local users and roles, their WeCom links, sync runs with progress events, and the per-corp
-- sync lease (PostgreSQL). Released migrations are never edited; add a new file instead.
--
-- Ids are database-issued integers (BIGINT GENERATED ALWAYS AS IDENTITY): compact keys make the
-- membership and link indexes small and joins cheap at 100k members, and both databases hand them back
-- with RETURNING. Every table carries `tenant` and every query filters on it, even where the id alone
-- would be unique, so one tenant can never read another's rows by guessing ids.
-- Timestamps are milliseconds since the epoch supplied by the caller (the store reads no clock).

CREATE TABLE users (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    mobile        TEXT,
    email         TEXT,
    avatar        TEXT,
    position      TEXT,
    gender        TEXT    CHECK (gender IN ('male', 'female', 'unspecified')),
    -- inactive = WeCom "not yet active" (status 4); left = gone from the corp, row kept.
    status        TEXT    NOT NULL CHECK (status IN ('active', 'disabled', 'inactive', 'left')),
    created_at_ms BIGINT  NOT NULL,
    updated_at_ms BIGINT  NOT NULL
);
CREATE INDEX users_tenant_mobile ON users (tenant, mobile);
CREATE INDEX users_tenant_email ON users (tenant, lower(email));
CREATE INDEX users_tenant_name ON users (tenant, name);

CREATE TABLE roles (
    id             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant         TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    parent_id      BIGINT  REFERENCES roles (id),
    sort_order     BIGINT  NOT NULL DEFAULT 0,
    origin         TEXT    NOT NULL CHECK (origin IN ('wecom', 'local')),
    archived_at_ms BIGINT,
    created_at_ms  BIGINT  NOT NULL,
    updated_at_ms  BIGINT  NOT NULL
);
CREATE INDEX roles_parent ON roles (tenant, parent_id);

-- A membership is closed (ended_at_ms set), never deleted, when the member leaves the role; at most one
-- open membership per (user, role).
CREATE TABLE memberships (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    user_id       BIGINT  NOT NULL REFERENCES users (id),
    role_id       BIGINT  NOT NULL REFERENCES roles (id),
    is_leader     BOOLEAN NOT NULL,
    sort_order    BIGINT  NOT NULL DEFAULT 0,
    is_main       BOOLEAN NOT NULL,
    started_at_ms BIGINT  NOT NULL,
    ended_at_ms   BIGINT
);
CREATE UNIQUE INDEX memberships_open ON memberships (user_id, role_id) WHERE ended_at_ms IS NULL;
CREATE INDEX memberships_role ON memberships (role_id, ended_at_ms);
CREATE INDEX memberships_user ON memberships (user_id, ended_at_ms);

-- WeCom userids are case-insensitive: `userid_norm` (lower-cased by the store) carries uniqueness and
-- lookups, `userid` keeps the spelling WeCom returned.
CREATE TABLE wecom_member_links (
    tenant      TEXT    NOT NULL,
    corpid      TEXT    NOT NULL,
    userid      TEXT    NOT NULL,
    userid_norm TEXT    NOT NULL,
    open_userid TEXT,
    user_id     BIGINT  NOT NULL REFERENCES users (id),
    PRIMARY KEY (tenant, corpid, userid_norm),
    UNIQUE (tenant, corpid, user_id)
);
CREATE INDEX wecom_member_links_user ON wecom_member_links (user_id);

CREATE TABLE wecom_department_links (
    tenant        TEXT    NOT NULL,
    corpid        TEXT    NOT NULL,
    department_id BIGINT  NOT NULL,
    role_id       BIGINT  NOT NULL REFERENCES roles (id),
    PRIMARY KEY (tenant, corpid, department_id),
    UNIQUE (tenant, corpid, role_id)
);
CREATE INDEX wecom_department_links_role ON wecom_department_links (role_id);

-- counters and checkpoint are JSON documents owned by the sync code (store::SyncCounters, free-form).
CREATE TABLE sync_runs (
    id             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant         TEXT    NOT NULL,
    corpid         TEXT    NOT NULL,
    kind           TEXT    NOT NULL CHECK (kind IN ('full', 'incremental')),
    dry_run        BOOLEAN NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'partial', 'failed', 'refused')),
    counters       TEXT    NOT NULL,
    error          TEXT,
    checkpoint     TEXT,
    -- The last event seq handed out; bumping it serialises appends to one run.
    last_event_seq BIGINT  NOT NULL DEFAULT 0,
    started_at_ms  BIGINT  NOT NULL,
    updated_at_ms  BIGINT  NOT NULL,
    finished_at_ms BIGINT
);
CREATE INDEX sync_runs_recent ON sync_runs (tenant, corpid, started_at_ms);

CREATE TABLE sync_events (
    tenant  TEXT    NOT NULL,
    run_id  BIGINT  NOT NULL REFERENCES sync_runs (id),
    seq     BIGINT  NOT NULL,
    at_ms   BIGINT  NOT NULL,
    payload TEXT    NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- Who runs the sync of one corp right now; same pattern as token_lease.
CREATE TABLE sync_leases (
    tenant        TEXT    NOT NULL,
    corpid        TEXT    NOT NULL,
    holder        TEXT    NOT NULL,
    expires_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (tenant, corpid)
);
