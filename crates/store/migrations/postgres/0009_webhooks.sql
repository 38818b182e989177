-- Business webhooks (issue 5): the durable webhook outbox, and the subscribe state of official-account
-- followers. Released migrations are never edited; add a new file.
--
-- One row per (tenant, event_id): an event enqueued twice (an inbox row handled again after a crash, a
-- replayed merge) is stored once. `payload` is the JSON body exactly as it will be POSTed and signed.
-- `status`: pending (due at `available_at_ms`) -> processing (claimed by `lease_owner` until
-- `available_at_ms`, the lease: a crashed worker's claim comes back when it runs out) -> delivered (the
-- receiver answered 2xx) | dead (out of attempts, or the tenant has no webhook any more; `last_error`
-- says why, and an operator's replay makes it pending again with attempts reset). `attempts` counts
-- claims and fences a worker whose lease ran out from finishing a row another worker claimed again.
-- `last_status_code` is the receiver's last HTTP status (NULL: no answer, e.g. a timeout).
CREATE TABLE webhook_deliveries (
    id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant           TEXT    NOT NULL,
    event_id         TEXT    NOT NULL,
    event_type       TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    status           TEXT    NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'processing', 'delivered', 'dead')),
    attempts         BIGINT  NOT NULL DEFAULT 0,
    available_at_ms  BIGINT  NOT NULL,
    lease_owner      TEXT,
    last_error       TEXT,
    last_status_code BIGINT,
    created_at_ms    BIGINT  NOT NULL,
    updated_at_ms    BIGINT  NOT NULL,
    delivered_at_ms  BIGINT,
    UNIQUE (tenant, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (tenant, status, available_at_ms);
CREATE INDEX webhook_deliveries_recent ON webhook_deliveries (tenant, id);

-- Whether an official-account follower is subscribed, as the last subscribe / unsubscribe callback said
-- (NULL: never told), and that callback's time: an older callback arriving late changes nothing.
ALTER TABLE wechat_identities ADD COLUMN subscribed BOOLEAN;
ALTER TABLE wechat_identities ADD COLUMN subscribed_changed_at_ms BIGINT;

-- Every inbox row is now claimed by the dispatch worker: rows stored as `pending_webhook` before this
-- migration (left for a webhook that did not exist yet) become pending.
UPDATE callback_inbox SET status = 'pending' WHERE status = 'pending_webhook';
