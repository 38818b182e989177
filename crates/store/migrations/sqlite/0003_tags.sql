-- WeCom tags mirrored as roles (SQLite). Released migrations are never edited; add a new file instead.
--
-- A tag is a role with origin 'wecom_tag' (top-level: no parent, order 0), linked by (tenant, corpid,
-- tagid) in `wecom_tag_links` like a department by `wecom_department_links`. The tag's users are plain
-- memberships of that role (never leader, never main). The tag's departments are `role_includes` rows:
-- "role X includes the members of role Y and of Y's sub-roles", closed (ended_at_ms), never deleted,
-- like memberships. A tag gone upstream is archived, its memberships and inclusions closed.
--
-- SQLite cannot change a CHECK constraint in place, so `roles` is rebuilt to allow 'wecom_tag', together
-- with the two tables that reference it. Everything runs in the migration's one transaction with foreign
-- keys on: the new tables reference `roles_new`, the old ones are dropped children first (so dropping
-- `roles` orphans nothing), and renaming `roles_new` to `roles` rewrites those references (SQLite >= 3.26).
-- Ids are copied as they are, so every stored id stays valid.

CREATE TABLE roles_new (
    id             INTEGER PRIMARY KEY,
    tenant         TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    parent_id      INTEGER REFERENCES roles_new (id),
    sort_order     INTEGER NOT NULL DEFAULT 0,
    origin         TEXT    NOT NULL CHECK (origin IN ('wecom', 'local', 'wecom_tag')),
    archived_at_ms INTEGER,
    created_at_ms  INTEGER NOT NULL,
    updated_at_ms  INTEGER NOT NULL
);
INSERT INTO roles_new (id, tenant, name, parent_id, sort_order, origin, archived_at_ms, created_at_ms,
                       updated_at_ms)
    SELECT id, tenant, name, parent_id, sort_order, origin, archived_at_ms, created_at_ms, updated_at_ms
    FROM roles;

CREATE TABLE memberships_new (
    id            INTEGER PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    user_id       INTEGER NOT NULL REFERENCES users (id),
    role_id       INTEGER NOT NULL REFERENCES roles_new (id),
    is_leader     INTEGER NOT NULL CHECK (is_leader IN (0, 1)),
    sort_order    INTEGER NOT NULL DEFAULT 0,
    is_main       INTEGER NOT NULL CHECK (is_main IN (0, 1)),
    started_at_ms INTEGER NOT NULL,
    ended_at_ms   INTEGER
);
INSERT INTO memberships_new (id, tenant, user_id, role_id, is_leader, sort_order, is_main, started_at_ms,
                             ended_at_ms)
    SELECT id, tenant, user_id, role_id, is_leader, sort_order, is_main, started_at_ms, ended_at_ms
    FROM memberships;

CREATE TABLE wecom_department_links_new (
    tenant        TEXT    NOT NULL,
    corpid        TEXT    NOT NULL,
    department_id INTEGER NOT NULL,
    role_id       INTEGER NOT NULL REFERENCES roles_new (id),
    PRIMARY KEY (tenant, corpid, department_id),
    UNIQUE (tenant, corpid, role_id)
);
INSERT INTO wecom_department_links_new (tenant, corpid, department_id, role_id)
    SELECT tenant, corpid, department_id, role_id FROM wecom_department_links;

DROP TABLE memberships;
DROP TABLE wecom_department_links;
DROP TABLE roles;
ALTER TABLE roles_new RENAME TO roles;
ALTER TABLE memberships_new RENAME TO memberships;
ALTER TABLE wecom_department_links_new RENAME TO wecom_department_links;

-- The indexes of 0002, which went with the old tables.
CREATE INDEX roles_parent ON roles (tenant, parent_id);
CREATE UNIQUE INDEX memberships_open ON memberships (user_id, role_id) WHERE ended_at_ms IS NULL;
CREATE INDEX memberships_role ON memberships (role_id, ended_at_ms);
CREATE INDEX memberships_user ON memberships (user_id, ended_at_ms);
CREATE INDEX wecom_department_links_role ON wecom_department_links (role_id);

CREATE TABLE wecom_tag_links (
    tenant  TEXT    NOT NULL,
    corpid  TEXT    NOT NULL,
    tagid   INTEGER NOT NULL,
    role_id INTEGER NOT NULL REFERENCES roles (id),
    PRIMARY KEY (tenant, corpid, tagid),
    UNIQUE (tenant, corpid, role_id)
);
CREATE INDEX wecom_tag_links_role ON wecom_tag_links (role_id);

-- At most one open inclusion per (role, included role).
CREATE TABLE role_includes (
    id               INTEGER PRIMARY KEY,
    tenant           TEXT    NOT NULL,
    role_id          INTEGER NOT NULL REFERENCES roles (id),
    included_role_id INTEGER NOT NULL REFERENCES roles (id),
    started_at_ms    INTEGER NOT NULL,
    ended_at_ms      INTEGER
);
CREATE UNIQUE INDEX role_includes_open ON role_includes (role_id, included_role_id) WHERE ended_at_ms IS NULL;
CREATE INDEX role_includes_role ON role_includes (role_id, ended_at_ms);
