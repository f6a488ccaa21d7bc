-- Where a merged person's id now points: events resolved before a merge but
-- stored after it are written under the surviving id.
CREATE TABLE modeling.person_redirects (
    tenant_id   text        NOT NULL,
    from_person uuid        NOT NULL,
    to_person   uuid        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, from_person)
);

-- Person attributes that activation must honour.
CREATE TABLE modeling.person_attributes (
    tenant_id         text        NOT NULL,
    person_id         uuid        NOT NULL,
    marketing_opt_out boolean     NOT NULL DEFAULT false,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, person_id)
);

-- Erasures applied here and not yet confirmed to the identity service: the
-- confirmation leaves the service, so it is relayed from this outbox.
CREATE TABLE modeling.erasure_confirmations (
    tenant_id       text        NOT NULL,
    erasure         text        NOT NULL,
    removed_records bigint      NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, erasure)
);
