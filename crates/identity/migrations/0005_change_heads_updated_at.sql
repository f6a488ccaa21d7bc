-- Every service's heads table has the same shape, so one shared function
-- moves them all on.
ALTER TABLE identity.change_heads ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
