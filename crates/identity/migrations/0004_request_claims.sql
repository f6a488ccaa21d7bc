-- A call with an idempotency key claims its key before it acts: a row with
-- no response yet is a call in flight. Concurrent duplicates then wait for
-- the first instead of acting beside it; created_at is the claim's time,
-- so a claim left by a crashed process can be taken over.
ALTER TABLE identity.requests ALTER COLUMN response DROP NOT NULL;
