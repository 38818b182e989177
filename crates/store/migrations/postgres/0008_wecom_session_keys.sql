-- A WeCom mini program's session_key for one member (user) of one mini program, kept only on the
-- server and only sealed, like wechat_session_keys (which is keyed by a WeChat identity, and a WeCom
-- member has none). `appid` is the mini program's appid; `sealed` is the domain layer's ciphertext
-- under the key named `key_id`. Replaced at every login.
CREATE TABLE wecom_session_keys (
    tenant        TEXT    NOT NULL,
    appid         TEXT    NOT NULL,
    user_id       BIGINT  NOT NULL REFERENCES users (id),
    key_id        TEXT    NOT NULL,
    sealed        BYTEA   NOT NULL,
    updated_at_ms BIGINT  NOT NULL,
    PRIMARY KEY (tenant, appid, user_id)
);
