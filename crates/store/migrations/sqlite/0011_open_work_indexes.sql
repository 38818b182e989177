-- Partial indexes over the rows the workers still have to claim, in id order.
--
-- The claims of the callback inbox, the webhook deliveries and the message outbox all take the oldest
-- due rows of a tenant (`... WHERE tenant = ? AND status IN (<open statuses>) ... ORDER BY id LIMIT n`).
-- With only the (status, due time) and (tenant, status, id) indexes, SQLite answered that by reading
-- every open row and sorting them, so with a backlog of 50,000 callbacks each claim of 32 rows took
-- about 15 ms and the dispatch worker drained barely 1,300 rows a second. Walking an index of the open
-- rows by (tenant, id) stops after the first n due rows, whatever the backlog or the done history.
CREATE INDEX callback_inbox_open ON callback_inbox (tenant, id)
    WHERE status IN ('pending', 'processing');
CREATE INDEX webhook_deliveries_open ON webhook_deliveries (tenant, id)
    WHERE status IN ('pending', 'processing');
CREATE INDEX outbox_messages_open ON outbox_messages (tenant, id)
    WHERE status IN ('queued', 'sending');
