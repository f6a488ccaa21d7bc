-- When each clean event was committed, so the pipeline's lag from acknowledgement to clean
-- can be measured and shown.
ALTER TABLE governance.clean_events ADD COLUMN cleaned_at timestamptz NOT NULL DEFAULT now();
