-- Persons erased here in the last hour. An event resolved to a person before
-- their erasure can reach the store after it (resolution runs ahead of
-- storage); it is dropped against this list. Only the random person id is
-- kept, and only for as long as a resolution can be in flight.
CREATE TABLE modeling.erased_persons (
    tenant_id  text        NOT NULL,
    person_id  uuid        NOT NULL,
    erased_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, person_id)
);
CREATE INDEX erased_persons_at ON modeling.erased_persons (erased_at);
