-- Replies to calls that carried an idempotency key (request_id), kept for
-- 24 hours so a retry returns the first call's result instead of acting
-- twice.
CREATE TABLE identity.requests (
    tenant_id  text        NOT NULL,
    request_id uuid        NOT NULL,
    method     text        NOT NULL,
    response   bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, request_id, method)
);
CREATE INDEX requests_created ON identity.requests (created_at);
