-- Several deliveries of one destination in flight at once. `ordering` is the contract's
-- WebhookOrdering number (1 sequence, 2 per person, 3 unordered) and `max_concurrency` the
-- most deliveries in flight. Batches may now be acknowledged out of order, so the cursor of
-- what is acknowledged (`delivered_sequence`, everything up to it) and the cursor of what is
-- frozen into batches (`frozen_sequence`, where the next freeze reads on) are kept apart. A
-- batch of a per-person destination holds the triggers of one lane (persons hashed into
-- `max_concurrency` lanes); each lane is delivered in sequence order.
ALTER TABLE modeling.webhook_destinations
    ADD COLUMN ordering smallint NOT NULL DEFAULT 1,
    ADD COLUMN max_concurrency int NOT NULL DEFAULT 1,
    ADD COLUMN frozen_sequence bigint;
UPDATE modeling.webhook_destinations d
   SET frozen_sequence = GREATEST(d.delivered_sequence,
       COALESCE((SELECT max(b.last_sequence) FROM modeling.webhook_batches b
                  WHERE b.tenant_id = d.tenant_id AND b.destination_id = d.destination_id), 0));
ALTER TABLE modeling.webhook_destinations ALTER COLUMN frozen_sequence SET NOT NULL;
ALTER TABLE modeling.webhook_batches ADD COLUMN lane int NOT NULL DEFAULT 0;
