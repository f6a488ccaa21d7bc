-- The clean log gets its own sequence: replayed and restated records are
-- appended after the head, so the clean sequence can no longer be the raw
-- one. The raw position is kept, unique, which makes every publication of a
-- raw record idempotent. A message id may now appear again (restatements).
ALTER TABLE governance.clean_events ADD COLUMN raw_sequence bigint;
UPDATE governance.clean_events SET raw_sequence = sequence;
ALTER TABLE governance.clean_events ALTER COLUMN raw_sequence SET NOT NULL;
ALTER TABLE governance.clean_events DROP CONSTRAINT clean_events_tenant_id_message_id_key;
CREATE UNIQUE INDEX clean_events_raw_sequence ON governance.clean_events (tenant_id, raw_sequence);
CREATE INDEX clean_events_message_id ON governance.clean_events (tenant_id, message_id);

-- Quarantined events keep everything needed to list, filter and replay them.
ALTER TABLE governance.quarantine
    ADD COLUMN source             text        NOT NULL DEFAULT '',
    ADD COLUMN source_event_name  text        NOT NULL DEFAULT '',
    ADD COLUMN received_at        timestamptz,
    ADD COLUMN source_revision    bigint      NOT NULL DEFAULT 0,
    -- touchline.common.v1.Event (protobuf encoding), after the latest correction
    ADD COLUMN raw_event          bytea,
    ADD COLUMN reason_number      integer     NOT NULL DEFAULT 0,
    ADD COLUMN violations         jsonb       NOT NULL DEFAULT '[]',
    ADD COLUMN dictionary_version bigint      NOT NULL DEFAULT 0,
    -- QuarantineState: 1 quarantined, 2 released, 3 duplicate
    ADD COLUMN state              smallint    NOT NULL DEFAULT 1,
    ADD COLUMN replay_count       integer     NOT NULL DEFAULT 0,
    ADD COLUMN last_replay_at     timestamptz,
    ADD COLUMN corrected          boolean     NOT NULL DEFAULT false,
    ADD COLUMN traceparent        text;
CREATE INDEX quarantine_by_state ON governance.quarantine (tenant_id, state, sequence);

-- One row per raw event governance has seen, saying what became of it: the
-- ledger the quality report sums, so received = clean + quarantined +
-- duplicates holds by construction.
-- outcome: 1 clean, 2 quarantined, 3 natural-key duplicate, 4 restatement,
-- 5 message-id duplicate (a replayed event already clean).
CREATE TABLE governance.raw_outcomes (
    tenant_id    text        NOT NULL,
    raw_sequence bigint      NOT NULL,
    source       text        NOT NULL,
    received_at  timestamptz NOT NULL,
    outcome      smallint    NOT NULL,
    reason       integer     NOT NULL DEFAULT 0,
    late         boolean     NOT NULL DEFAULT false,
    corrected    boolean     NOT NULL DEFAULT false,
    identified   boolean     NOT NULL DEFAULT false,
    blocked_ids  integer     NOT NULL DEFAULT 0,
    invalid_ids  integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, raw_sequence)
);
CREATE INDEX raw_outcomes_by_time ON governance.raw_outcomes (tenant_id, received_at);

-- Natural keys of business records already published.
CREATE TABLE governance.natural_keys (
    tenant_id          text        NOT NULL,
    natural_key        text        NOT NULL,
    source             text        NOT NULL,
    message_id         text        NOT NULL,
    content_hash       bytea       NOT NULL,
    first_raw_sequence bigint      NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, natural_key)
);

-- The tenant's working draft of the dictionary, one row per canonical event.
CREATE TABLE governance.dictionary_draft (
    tenant_id    text        NOT NULL,
    event_name   text        NOT NULL,
    definition   jsonb       NOT NULL,
    -- the version this definition was last published in; 0 while draft-only
    version      bigint      NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_name)
);

-- Published, frozen dictionary versions; the newest is active.
CREATE TABLE governance.dictionary_versions (
    tenant_id    text        NOT NULL,
    version      bigint      NOT NULL,
    description  text        NOT NULL,
    publisher    text        NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    -- the Dictionary (serde JSON)
    dictionary   jsonb       NOT NULL,
    -- [{event_name, kind}]
    changes      jsonb       NOT NULL,
    PRIMARY KEY (tenant_id, version)
);

-- Pseudonymisation keys per tenant; the highest version is current.
CREATE TABLE governance.tenant_keys (
    tenant_id  text        NOT NULL,
    version    integer     NOT NULL,
    secret     bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, version)
);

-- Per-tenant privacy settings; tenants without a row use the defaults.
CREATE TABLE governance.privacy_settings (
    tenant_id            text        PRIMARY KEY,
    default_country_code text        NOT NULL,
    direct_types         text[]      NOT NULL,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Identifier values a tenant blocks besides the built-in placeholders;
-- identifier_type '' blocks the value for every type.
CREATE TABLE governance.blocked_identifiers (
    tenant_id       text NOT NULL,
    identifier_type text NOT NULL,
    value           text NOT NULL,
    PRIMARY KEY (tenant_id, identifier_type, value)
);

-- Idempotency of retried writes (request_id), kept 24 hours.
CREATE TABLE governance.idempotency (
    tenant_id  text        NOT NULL,
    request_id text        NOT NULL,
    method     text        NOT NULL,
    response   bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, request_id)
);
