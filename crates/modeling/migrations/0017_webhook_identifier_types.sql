-- The identifier types a destination's deliveries carry per trigger (a CRM id, a member
-- card), read from identity when a batch is frozen, so every attempt sends the same body.
ALTER TABLE modeling.webhook_destinations
    ADD COLUMN identifier_types text[] NOT NULL DEFAULT '{}';
