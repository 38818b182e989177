-- Message push (issue 5): the durable outbox. Released migrations are never edited; add a new file.

-- One accepted message. `request` is the caller's JSON as accepted (recipients, content), `request_hash`
-- its SHA-256 so that a replay with the same idempotency key and another body is refused. `status`:
-- queued -> sending (claimed) -> sent | partial | failed; a claim is a lease (`lease_owner`,
-- `lease_until_ms`): a crashed worker's claim comes back when it expires.
CREATE TABLE outbox_messages (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant             TEXT    NOT NULL,
    app                TEXT    NOT NULL,
    idempotency_key    TEXT    NOT NULL,
    request_hash       TEXT    NOT NULL,
    request            TEXT    NOT NULL,
    msgtype            TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    attempts           BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at_ms BIGINT  NOT NULL,
    lease_owner        TEXT,
    lease_until_ms     BIGINT,
    error              TEXT,
    invalid            TEXT    NOT NULL,
    created_at_ms      BIGINT  NOT NULL,
    updated_at_ms      BIGINT  NOT NULL,
    finished_at_ms     BIGINT,
    UNIQUE (tenant, idempotency_key)
);
CREATE INDEX outbox_messages_due ON outbox_messages (status, next_attempt_at_ms);
CREATE INDEX outbox_messages_recent ON outbox_messages (tenant, id);

-- One `message/send` call of a message (at most 1,000 users / 100 departments). `targets` is JSON: the
-- userids and department ids sent, each with the local user / role id it stands for, so that
-- invaliduser / invalidparty map back. `msgid` is written in the same statement that marks it sent.
CREATE TABLE outbox_calls (
    message_id      BIGINT NOT NULL REFERENCES outbox_messages (id),
    seq             BIGINT NOT NULL,
    targets         TEXT   NOT NULL,
    status          TEXT   NOT NULL,
    msgid           TEXT,
    invalid         TEXT,
    error           TEXT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    sent_at_ms      BIGINT,
    recalled_at_ms  BIGINT,
    PRIMARY KEY (message_id, seq)
);
