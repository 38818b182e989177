-- WeCom tags mirrored as roles (PostgreSQL). Released migrations are never edited; add a new file instead.
--
-- A tag is a role with origin 'wecom_tag' (top-level: no parent, order 0), linked by (tenant, corpid,
-- tagid) in `wecom_tag_links` like a department by `wecom_department_links`. The tag's users are plain
-- memberships of that role (never leader, never main). The tag's departments are `role_includes` rows:
-- "role X includes the members of role Y and of Y's sub-roles", closed (ended_at_ms), never deleted,
-- like memberships. A tag gone upstream is archived, its memberships and inclusions closed.

ALTER TABLE roles DROP CONSTRAINT roles_origin_check;
ALTER TABLE roles ADD CONSTRAINT roles_origin_check CHECK (origin IN ('wecom', 'local', 'wecom_tag'));

CREATE TABLE wecom_tag_links (
    tenant  TEXT    NOT NULL,
    corpid  TEXT    NOT NULL,
    tagid   BIGINT  NOT NULL,
    role_id BIGINT  NOT NULL REFERENCES roles (id),
    PRIMARY KEY (tenant, corpid, tagid),
    UNIQUE (tenant, corpid, role_id)
);
CREATE INDEX wecom_tag_links_role ON wecom_tag_links (role_id);

-- At most one open inclusion per (role, included role).
CREATE TABLE role_includes (
    id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant           TEXT    NOT NULL,
    role_id          BIGINT  NOT NULL REFERENCES roles (id),
    included_role_id BIGINT  NOT NULL REFERENCES roles (id),
    started_at_ms    BIGINT  NOT NULL,
    ended_at_ms      BIGINT
);
CREATE UNIQUE INDEX role_includes_open ON role_includes (role_id, included_role_id) WHERE ended_at_ms IS NULL;
CREATE INDEX role_includes_role ON role_includes (role_id, ended_at_ms);
