-- The identity graph, exact-match version: persons and the identifiers that
-- belong to them. An identifier (type, scope, value) belongs to at most one
-- person per tenant; the unique key is what makes concurrent first sightings
-- of the same identifier safe (INSERT ... ON CONFLICT DO NOTHING, then re-read).

CREATE TABLE identity.persons (
    tenant_id  text        NOT NULL,
    -- UUID v7: time-ordered, so the smallest id is the oldest person
    person_id  uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, person_id)
);

CREATE TABLE identity.identifiers (
    tenant_id           text        NOT NULL,
    -- normalised: trimmed, type lower-cased, email values lower-cased
    id_type             text        NOT NULL,
    -- empty when the type is globally unique
    id_scope            text        NOT NULL,
    id_value            text        NOT NULL,
    person_id           uuid        NOT NULL,
    linked_at           timestamptz NOT NULL DEFAULT now(),
    -- evidence of the first sighting: when and in which event the
    -- identifier was seen with the person's others
    observed_at         timestamptz,
    evidence_message_id text        NOT NULL DEFAULT '',
    CONSTRAINT identifiers_key UNIQUE (tenant_id, id_type, id_scope, id_value),
    FOREIGN KEY (tenant_id, person_id) REFERENCES identity.persons (tenant_id, person_id)
);

-- All identifiers of a person (profiles, erasure, merges).
CREATE INDEX identifiers_person ON identity.identifiers (tenant_id, person_id);
