-- Idempotency keys move to the shape every service shares: a call claims
-- its key in the transaction that acts (a concurrent retry waits for it and
-- reads its reply), and the column naming what the key is for is `method`
-- as elsewhere.
ALTER TABLE collection.idempotent_requests RENAME COLUMN operation TO method;
ALTER TABLE collection.idempotent_requests ALTER COLUMN response DROP NOT NULL;
