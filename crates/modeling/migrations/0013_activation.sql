-- Activation: the trigger log every segment change writes into in the same transaction (the
-- outbox of DESIGN.md: a crash between commit and delivery delays a delivery, never loses
-- it), webhook destinations with their delivery cursor, the batch each destination is
-- delivering (frozen at its first attempt, so retries carry the same id and body), and the
-- ledger of attempts.
CREATE TABLE modeling.triggers (
    tenant_id     text        NOT NULL,
    sequence      bigint      NOT NULL,
    trigger_type  smallint    NOT NULL,
    person_id     uuid        NOT NULL,
    segment_id    text        NOT NULL DEFAULT '',
    reason        smallint    NOT NULL DEFAULT 0,
    triggered_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, sequence)
);

CREATE TABLE modeling.trigger_heads (
    tenant_id        text   NOT NULL PRIMARY KEY,
    head_sequence    bigint NOT NULL,
    pruned_through   bigint NOT NULL DEFAULT 0
);

CREATE TABLE modeling.webhook_destinations (
    tenant_id             text        NOT NULL,
    destination_id        text        NOT NULL,
    display_name          text        NOT NULL,
    url                   text        NOT NULL,
    trigger_types         smallint[]  NOT NULL,
    segment_ids           text[]      NOT NULL,
    max_batch_size        int         NOT NULL,
    -- Current secret first; an older one stays valid until `previous_secret_until`.
    signing_secret        text        NOT NULL,
    previous_secret       text,
    previous_secret_until timestamptz,
    delivered_sequence    bigint      NOT NULL,
    state                 smallint    NOT NULL DEFAULT 1,
    consecutive_failures  int         NOT NULL DEFAULT 0,
    last_success_at       timestamptz,
    last_failure_at       timestamptz,
    last_error            text        NOT NULL DEFAULT '',
    created_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, destination_id)
);

-- The batch a destination is delivering: at most one per destination.
CREATE TABLE modeling.webhook_batches (
    tenant_id        text        NOT NULL,
    destination_id   text        NOT NULL,
    webhook_id       text        NOT NULL,
    first_sequence   bigint      NOT NULL,
    last_sequence    bigint      NOT NULL,
    body             bytea       NOT NULL,
    attempts         int         NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, destination_id)
);

CREATE TABLE modeling.webhook_attempts (
    tenant_id        text        NOT NULL,
    destination_id   text        NOT NULL,
    attempt_id       bigserial   NOT NULL,
    webhook_id       text        NOT NULL,
    first_sequence   bigint      NOT NULL,
    last_sequence    bigint      NOT NULL,
    attempt          int         NOT NULL,
    attempted_at     timestamptz NOT NULL,
    outcome          smallint    NOT NULL,
    http_status      int         NOT NULL,
    error            text        NOT NULL,
    duration_ms      bigint      NOT NULL,
    PRIMARY KEY (tenant_id, destination_id, attempt_id)
);

CREATE TABLE modeling.webhook_requests (
    tenant_id       text        NOT NULL,
    request_id      text        NOT NULL,
    destination_id  text        NOT NULL,
    secret          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, request_id)
);
