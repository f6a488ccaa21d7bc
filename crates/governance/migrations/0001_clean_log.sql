-- The clean event log. A clean record keeps the sequence of the raw record it
-- came from (one record in, one out), so the log needs no allocator: the one
-- cleaning worker per tenant writes in raw order and bumps clean_heads in the
-- same transaction.
CREATE TABLE governance.clean_heads (
    tenant_id     text        PRIMARY KEY,
    last_sequence bigint      NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE governance.clean_events (
    tenant_id    text        NOT NULL,
    sequence     bigint      NOT NULL,
    message_id   text        NOT NULL,
    event_name   text        NOT NULL,
    channel      text        NOT NULL,
    event_time   timestamptz NOT NULL,
    -- touchline.governance.v1.CleanEvent (protobuf encoding)
    payload      bytea       NOT NULL,
    traceparent  text,
    PRIMARY KEY (tenant_id, sequence),
    UNIQUE (tenant_id, message_id)
);

-- Raw records that could not be cleaned, with a typed reason; nothing is dropped.
CREATE TABLE governance.quarantine (
    tenant_id    text        NOT NULL,
    sequence     bigint      NOT NULL,
    message_id   text        NOT NULL,
    reason       text        NOT NULL,
    field        text        NOT NULL,
    detail       text        NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, sequence)
);

-- How far each consumer of an upstream log has committed, per tenant.
CREATE TABLE governance.consumer_cursors (
    consumer      text        NOT NULL,
    tenant_id     text        NOT NULL,
    last_sequence bigint      NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, tenant_id)
);
