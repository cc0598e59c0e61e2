-- Where a run ran when it was not in this process: the Dataproc batch's
-- Cloud console page, recorded as soon as the batch exists (before it ends),
-- so a person can follow a slow or failed run to its driver's logs.
ALTER TABLE batch_runs ADD COLUMN IF NOT EXISTS console_url TEXT;
