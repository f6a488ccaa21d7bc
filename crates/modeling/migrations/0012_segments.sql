-- Segments: a rule over persons, kept current as events arrive and as time passes.
-- `rule` holds the domain rule as JSON; `revision` is the etag and grows with every change of
-- the definition; `rule_revision` grows only when the rule changes, so the membership worker
-- knows to rebuild with reason RULE_CHANGED. A deleted segment keeps its row (deleted_at set)
-- until the worker has published the exits of its members.
CREATE TABLE modeling.segments (
    tenant_id             text        NOT NULL,
    segment_id            text        NOT NULL,
    display_name          text        NOT NULL,
    description           text        NOT NULL,
    rule                  jsonb       NOT NULL,
    reevaluation_secs     bigint      NOT NULL,
    revision              bigint      NOT NULL,
    rule_revision         bigint      NOT NULL,
    -- The rule revision the members reflect; NULL while the first build is pending.
    built_rule_revision   bigint,
    member_count          bigint      NOT NULL DEFAULT 0,
    last_change_sequence  bigint      NOT NULL DEFAULT 0,
    -- When a window condition may next change a membership without any new event.
    next_due_at           timestamptz,
    evaluated_at          timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    deleted_at            timestamptz,
    PRIMARY KEY (tenant_id, segment_id)
);

-- Membership intervals: a person is a member at sequence S when entered_sequence <= S and
-- exited_sequence is NULL or above S. Keeping the intervals (not only current members) lets
-- a paginated bootstrap stay exact at the sequence fixed by its first page.
CREATE TABLE modeling.segment_memberships (
    tenant_id         text        NOT NULL,
    segment_id        text        NOT NULL,
    person_id         uuid        NOT NULL,
    entered_sequence  bigint      NOT NULL,
    entered_at        timestamptz NOT NULL,
    exited_sequence   bigint,
    PRIMARY KEY (tenant_id, segment_id, person_id, entered_sequence)
);
CREATE INDEX segment_memberships_current
    ON modeling.segment_memberships (tenant_id, segment_id, person_id)
    WHERE exited_sequence IS NULL;

-- The per-tenant change log all segments share, in sequence order.
CREATE TABLE modeling.segment_changes (
    tenant_id    text        NOT NULL,
    sequence     bigint      NOT NULL,
    change_id    uuid        NOT NULL,
    segment_id   text        NOT NULL,
    person_id    uuid        NOT NULL,
    kind         smallint    NOT NULL,
    reason       smallint    NOT NULL,
    changed_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, sequence)
);
CREATE INDEX segment_changes_by_segment ON modeling.segment_changes (tenant_id, segment_id, sequence);

-- Each tenant's newest change sequence, and the oldest one still retained: a reader behind
-- it is told to bootstrap again instead of silently missing changes.
CREATE TABLE modeling.segment_change_heads (
    tenant_id        text   NOT NULL PRIMARY KEY,
    head_sequence    bigint NOT NULL,
    pruned_through   bigint NOT NULL DEFAULT 0
);

-- Segment writes already applied, by the caller's request id. Kept a day.
CREATE TABLE modeling.segment_requests (
    tenant_id   text        NOT NULL,
    request_id  text        NOT NULL,
    segment_id  text        NOT NULL,
    action      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, request_id)
);
