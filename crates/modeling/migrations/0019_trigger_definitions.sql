-- Trigger definitions: the raw triggers marketing automation wants (a type, a segment, the
-- stages or RFM segments changed to), each person at most as often as a cap allows. A
-- definition fires in the transaction that appends the raw trigger, as a trigger of its own.
CREATE TABLE modeling.trigger_definitions (
    tenant_id         text        NOT NULL,
    definition_id     text        NOT NULL,
    display_name      text        NOT NULL DEFAULT '',
    trigger_type      smallint    NOT NULL,
    segment_id        text        NOT NULL DEFAULT '',
    -- Lifecycle stages or RFM segments changed to (contract numbers); empty for any.
    target_values     smallint[]  NOT NULL DEFAULT '{}',
    -- The cap: at most cap_max triggers per person within cap_period_secs; NULL for none.
    cap_max           integer,
    cap_period_secs   bigint,
    suppressed_count  bigint      NOT NULL DEFAULT 0,
    revision          bigint      NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, definition_id)
);

CREATE TABLE modeling.trigger_definition_requests (
    tenant_id      text        NOT NULL,
    request_id     text        NOT NULL,
    definition_id  text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, request_id)
);

-- The definition that fired a trigger; empty for the raw log.
ALTER TABLE modeling.triggers ADD COLUMN definition_id text NOT NULL DEFAULT '';
-- A cap counts a person's recent triggers of one definition.
CREATE INDEX triggers_by_definition ON modeling.triggers (tenant_id, definition_id, person_id, triggered_at)
    WHERE definition_id <> '';

-- The definitions whose triggers a destination delivers; empty for the raw log.
ALTER TABLE modeling.webhook_destinations ADD COLUMN definition_ids text[] NOT NULL DEFAULT '{}';

-- The event behind a change or trigger decided by new events (reason RULE_EVALUATED): the
-- message id of the person's newest stored event when it was decided; empty otherwise.
ALTER TABLE modeling.segment_changes ADD COLUMN cause_message_id text NOT NULL DEFAULT '';
ALTER TABLE modeling.triggers ADD COLUMN cause_message_id text NOT NULL DEFAULT '';
