-- The unified event store: every clean event with the person it belongs to.
CREATE TABLE modeling.events (
    tenant_id    text        NOT NULL,
    sequence     bigint      NOT NULL,
    message_id   text        NOT NULL,
    person_id    uuid        NOT NULL,
    event_name   text        NOT NULL,
    channel      text        NOT NULL,
    event_time   timestamptz NOT NULL,
    -- touchline.governance.v1.CleanEvent (protobuf encoding)
    payload      bytea       NOT NULL,
    stored_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, sequence),
    UNIQUE (tenant_id, message_id)
);
CREATE INDEX events_person ON modeling.events (tenant_id, person_id, event_time);

-- How far each consumer of an upstream log has committed, per tenant.
CREATE TABLE modeling.consumer_cursors (
    consumer      text        NOT NULL,
    tenant_id     text        NOT NULL,
    last_sequence bigint      NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, tenant_id)
);
