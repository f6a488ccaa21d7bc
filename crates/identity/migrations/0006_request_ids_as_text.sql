-- Idempotency keys are kept by the table shape every service shares
-- (request ids as text); identity checks them to be UUIDs before they get
-- here and stores them in their canonical form.
ALTER TABLE identity.requests ALTER COLUMN request_id TYPE text USING request_id::text;
