-- Clean events the event store could not take: identity refused their identifiers as
-- invalid, or the event lacked what storing needs. They are set aside here with a typed
-- reason, in the same transaction as the cursor that passes them, so the events behind them
-- flow on; a person lists them, fixes the cause upstream and replays from governance.
CREATE TABLE modeling.dead_letters (
    tenant_id     text        NOT NULL,
    sequence      bigint      NOT NULL,
    message_id    text        NOT NULL,
    reason        text        NOT NULL,
    detail        text        NOT NULL,
    payload       bytea       NOT NULL,
    set_aside_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, sequence)
);
