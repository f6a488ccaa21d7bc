-- A destination may hold several frozen batches at once, in sequence order: the next ones are
-- frozen together ahead of their first attempt (one transaction for many deliveries), and
-- each is still delivered one after another with the id and body it was frozen with.
ALTER TABLE modeling.webhook_batches DROP CONSTRAINT webhook_batches_pkey;
ALTER TABLE modeling.webhook_batches
    ADD PRIMARY KEY (tenant_id, destination_id, first_sequence);
