-- The callback inbox (issue 5): every verified, decrypted callback is written here BEFORE the HTTP answer
-- goes back, then handled by the dispatch worker. Released migrations are never edited; add a new file.
--
-- `source` names the receiving endpoint (`wecom_app:<name>`, `wecom_contacts`, `wechat_oa:<name>`);
-- `dedup_key` is `CallbackMessage::dedup_key` (MsgId, or sender + CreateTime + event identity), so a
-- retried or replayed delivery hits the unique key and inserts nothing. `payload` is the decrypted
-- plaintext (XML or JSON) as received.
--
-- `status`: pending (waiting, or waiting to be retried at `available_at_ms`), processing (claimed by
-- `claimed_by` until `available_at_ms`, the lease: a crashed worker's claim comes back when it runs out),
-- done (handled here), pending_webhook (left for the business webhook, issue 5 item 3), dead (out of
-- attempts or not retryable; `last_error` says why). `attempts` counts claims; it also fences a
-- worker whose lease ran out from finishing a row another worker claimed again.
CREATE TABLE callback_inbox (
    id              INTEGER PRIMARY KEY,
    tenant          TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    dedup_key       TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processing', 'done', 'pending_webhook', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    available_at_ms INTEGER NOT NULL,
    claimed_by      TEXT,
    last_error      TEXT,
    outcome         TEXT,
    received_at_ms  INTEGER NOT NULL,
    finished_at_ms  INTEGER,
    UNIQUE (tenant, source, dedup_key)
);
CREATE INDEX callback_inbox_due ON callback_inbox (status, available_at_ms);
CREATE INDEX callback_inbox_tenant ON callback_inbox (tenant, status, id);
