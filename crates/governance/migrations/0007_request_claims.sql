-- Idempotency keys move to the shape every service shares: a call claims
-- its key before acting (a row with no response is a call in flight), and
-- one request id sent to two methods is two keys.
ALTER TABLE governance.idempotency ALTER COLUMN response DROP NOT NULL;
ALTER TABLE governance.idempotency DROP CONSTRAINT idempotency_pkey;
ALTER TABLE governance.idempotency ADD PRIMARY KEY (tenant_id, request_id, method);
