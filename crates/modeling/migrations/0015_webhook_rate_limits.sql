-- A destination's own rate limit: most delivery attempts a second (0: none).
ALTER TABLE modeling.webhook_destinations
    ADD COLUMN max_deliveries_per_second int NOT NULL DEFAULT 0;
