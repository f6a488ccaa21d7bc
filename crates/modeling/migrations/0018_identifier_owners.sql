-- Who holds each identifier, as identity's change log announces it (LINK, and the merges,
-- splits and erasures that move or remove identifiers): segments select persons by the
-- identifiers they hold. Values are in the form clean events carry them.
CREATE TABLE modeling.identifier_owners (
    tenant_id  text        NOT NULL,
    id_type    text        NOT NULL,
    id_scope   text        NOT NULL,
    id_value   text        NOT NULL,
    person_id  uuid        NOT NULL,
    linked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id_type, id_scope, id_value)
);
CREATE INDEX identifier_owners_person ON modeling.identifier_owners (tenant_id, person_id);

-- Persons whose identifiers of a type changed, waiting for the segment worker to publish an
-- IDENTIFIERS_UPDATED change for the segments that export that type. Queued only for tenants
-- with segments; the worker takes what it read in the transaction that publishes.
CREATE TABLE modeling.identifier_updates (
    id         bigserial   PRIMARY KEY,
    tenant_id  text        NOT NULL,
    person_id  uuid        NOT NULL,
    id_type    text        NOT NULL,
    queued_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX identifier_updates_tenant ON modeling.identifier_updates (tenant_id, id);

-- The identifier types whose change for a member publishes an update (the contract's
-- `Segment.identifier_update_types`).
ALTER TABLE modeling.segments
    ADD COLUMN identifier_update_types text[] NOT NULL DEFAULT '{}';

-- Grows with every change of a tenant's identifier owners, so the segment worker looks again
-- when identifiers moved without a new event (a LinkIdentifiers call, a split).
CREATE TABLE modeling.identifier_heads (
    tenant_id      text   NOT NULL PRIMARY KEY,
    head_sequence  bigint NOT NULL
);
