-- The raw event log: every accepted event, exactly once per (tenant, message id).
-- Sequences are per tenant and come from log_heads; the row lock taken when a
-- batch bumps its tenant's head orders commits by sequence, so a tailer that
-- reads "after N" can never miss a lower sequence committed later.
CREATE TABLE collection.log_heads (
    tenant_id     text        PRIMARY KEY,
    last_sequence bigint      NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE collection.raw_events (
    tenant_id    text        NOT NULL,
    sequence     bigint      NOT NULL,
    message_id   text        NOT NULL,
    event_name   text        NOT NULL,
    source       text        NOT NULL,
    channel      text        NOT NULL,
    received_at  timestamptz NOT NULL,
    -- touchline.common.v1.Event exactly as received (protobuf encoding)
    payload      bytea       NOT NULL,
    traceparent  text,
    PRIMARY KEY (tenant_id, sequence),
    UNIQUE (tenant_id, message_id)
);
