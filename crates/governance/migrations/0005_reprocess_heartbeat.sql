-- When the server running a job last showed it was alive. A job left pending or
-- running by a server that stopped is found by this and reported failed, so
-- nobody waits on it for ever.
ALTER TABLE governance.reprocess_jobs
    ADD COLUMN heartbeat_at timestamptz NOT NULL DEFAULT now();
