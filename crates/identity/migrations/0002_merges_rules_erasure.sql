-- Merges, splits, rules, erasure and the cache outbox.
--
-- Identifiers now move between persons (merge, split), so each carries a
-- version that grows on every move: the cache compares it on refill, so a
-- lookup that read the graph before a move can never put the old owner
-- back. Every move is also kept as a validity range (identifier_history) to
-- answer "who was this identifier at time T".

ALTER TABLE identity.persons
    ADD COLUMN state              text        NOT NULL DEFAULT 'active',
    ADD COLUMN merged_into        uuid,
    ADD COLUMN updated_at         timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN marketing_opt_out  boolean     NOT NULL DEFAULT false,
    ADD COLUMN consent_time       timestamptz,
    ADD COLUMN consent_source     text        NOT NULL DEFAULT '',
    ADD COLUMN consent_actor      text        NOT NULL DEFAULT '',
    ADD CONSTRAINT persons_state CHECK (state IN ('active', 'merged'));

-- Persons merged into a survivor, to redirect their old ids.
CREATE INDEX persons_merged_into ON identity.persons (tenant_id, merged_into)
    WHERE merged_into IS NOT NULL;

ALTER TABLE identity.identifiers
    -- grows on every move; compared by the cache on refill
    ADD COLUMN version     bigint      NOT NULL DEFAULT 1,
    -- persons other than the owner this value was seen with on events whose
    -- links a rule refused; past the type's limit the value stops linking
    ADD COLUMN seen_with   uuid[]      NOT NULL DEFAULT '{}',
    ADD COLUMN last_seen_at timestamptz;

-- Which person an identifier belonged to, and when (valid_to NULL = now).
CREATE TABLE identity.identifier_history (
    tenant_id  text        NOT NULL,
    id_type    text        NOT NULL,
    id_scope   text        NOT NULL,
    id_value   text        NOT NULL,
    person_id  uuid        NOT NULL,
    valid_from timestamptz NOT NULL,
    valid_to   timestamptz
);
CREATE INDEX identifier_history_key
    ON identity.identifier_history (tenant_id, id_type, id_scope, id_value, valid_from);
CREATE INDEX identifier_history_person ON identity.identifier_history (tenant_id, person_id);

-- Resolution rules per tenant, as the JSON of the domain type.
CREATE TABLE identity.rules (
    tenant_id  text        PRIMARY KEY,
    rules      jsonb       NOT NULL,
    revision   bigint      NOT NULL,
    updated_at timestamptz NOT NULL
);

-- The identity change log: one sequence per tenant, allocated by bumping the
-- tenant's head row, which also orders commits by sequence.
CREATE TABLE identity.change_heads (
    tenant_id     text   PRIMARY KEY,
    last_sequence bigint NOT NULL
);

CREATE TABLE identity.changes (
    tenant_id        text        NOT NULL,
    sequence         bigint      NOT NULL,
    kind             text        NOT NULL,
    person_id        uuid        NOT NULL,
    other_person_ids uuid[]      NOT NULL DEFAULT '{}',
    -- SPLIT: moved identifiers as [{"type","scope","value"}]
    moved            jsonb       NOT NULL DEFAULT '[]',
    erasure_id       uuid,
    marketing_opt_out boolean    NOT NULL DEFAULT false,
    change_time      timestamptz NOT NULL,
    traceparent      text        NOT NULL DEFAULT '',
    PRIMARY KEY (tenant_id, sequence)
);

-- Audit of every decision: merges, refusals, splits.
CREATE TABLE identity.decisions (
    tenant_id        text        NOT NULL,
    decision_id      uuid        NOT NULL,
    kind             text        NOT NULL,
    rule             text        NOT NULL,
    refusal_reason   text        NOT NULL DEFAULT '',
    person_id        uuid        NOT NULL,
    other_person_ids uuid[]      NOT NULL DEFAULT '{}',
    -- [{"type","scope","masked"}]: masked, never the stored value
    identifiers      jsonb       NOT NULL DEFAULT '[]',
    evidence_message_id text     NOT NULL DEFAULT '',
    source           text        NOT NULL DEFAULT '',
    actor            text        NOT NULL DEFAULT '',
    reason           text        NOT NULL DEFAULT '',
    review_item_id   uuid,
    created_at       timestamptz NOT NULL,
    change_sequence  bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, decision_id)
);
CREATE INDEX decisions_person ON identity.decisions (tenant_id, person_id);

-- Conflicts waiting for a human. One item per pair of persons, whatever its
-- state: a rejected pair is not reopened by later evidence.
CREATE TABLE identity.review_items (
    tenant_id      text        NOT NULL,
    item_id        uuid        NOT NULL,
    state          text        NOT NULL DEFAULT 'open',
    refusal_reason text        NOT NULL,
    person_a       uuid        NOT NULL,
    person_b       uuid        NOT NULL,
    identifiers    jsonb       NOT NULL DEFAULT '[]',
    evidence_message_ids text[] NOT NULL DEFAULT '{}',
    evidence_count bigint      NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL,
    resolved_at    timestamptz,
    resolver       text        NOT NULL DEFAULT '',
    note           text        NOT NULL DEFAULT '',
    version        bigint      NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, item_id),
    CONSTRAINT review_items_pair UNIQUE (tenant_id, person_a, person_b)
);

-- Pairs of persons a split separated: automatic links do not rejoin them.
CREATE TABLE identity.separations (
    tenant_id text NOT NULL,
    person_a  uuid NOT NULL,
    person_b  uuid NOT NULL,
    PRIMARY KEY (tenant_id, person_a, person_b)
);

-- Erasures and each service's confirmation. Holds no personal data.
CREATE TABLE identity.erasures (
    tenant_id    text        NOT NULL,
    erasure_id   uuid        NOT NULL,
    person_ids   uuid[]      NOT NULL,
    reason       text        NOT NULL,
    actor        text        NOT NULL,
    requested_at timestamptz NOT NULL,
    completed_at timestamptz,
    PRIMARY KEY (tenant_id, erasure_id)
);

CREATE TABLE identity.erasure_confirmations (
    tenant_id       text        NOT NULL,
    erasure_id      uuid        NOT NULL,
    service         text        NOT NULL,
    removed_records bigint      NOT NULL DEFAULT 0,
    done_at         timestamptz,
    PRIMARY KEY (tenant_id, erasure_id, service)
);

-- Identifier values of erased persons (already pseudonymised upstream):
-- late events carrying them resolve to no person instead of recreating one.
CREATE TABLE identity.suppressed (
    tenant_id  text        NOT NULL,
    id_type    text        NOT NULL,
    id_scope   text        NOT NULL,
    id_value   text        NOT NULL,
    erasure_id uuid        NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id_type, id_scope, id_value)
);

-- Cache invalidations, written in the transaction of the graph change and
-- relayed to Redis after commit.
CREATE TABLE identity.outbox (
    id        bigserial   PRIMARY KEY,
    tenant_id text        NOT NULL,
    id_type   text        NOT NULL,
    id_scope  text        NOT NULL,
    id_value  text        NOT NULL,
    version   bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
