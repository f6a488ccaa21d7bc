-- Identifiers found shared by several people, per person they were detached from: an event
-- resolved to that person before the detach but stored after it must not land on them.
CREATE TABLE modeling.detached_identifiers (
    tenant_id  text        NOT NULL,
    person_id  uuid        NOT NULL,
    id_type    text        NOT NULL,
    id_scope   text        NOT NULL,
    id_value   text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, person_id, id_type, id_scope, id_value)
);
