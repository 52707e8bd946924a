-- phasegate's own bookkeeping in the target database: backfill runs, their
-- committed batches (the checkpoints) and the findings: those of the latest
-- backfill of each type, each under the run that first found it (a re-run that
-- finds the same writes none; one found no longer is deleted).
CREATE TABLE IF NOT EXISTS phasegate_backfill_runs (
    run_id      text PRIMARY KEY,
    types       text[] NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE TABLE IF NOT EXISTS phasegate_backfill_batches (
    run_id      text NOT NULL REFERENCES phasegate_backfill_runs ON DELETE CASCADE,
    type_id     text NOT NULL,
    batch       integer NOT NULL,
    keys_digest text NOT NULL,
    inserted    integer NOT NULL,
    updated     integer NOT NULL,
    unchanged   integer NOT NULL,
    PRIMARY KEY (run_id, type_id, batch)
);
CREATE TABLE IF NOT EXISTS phasegate_findings (
    run_id    text NOT NULL,
    type_id   text NOT NULL,
    kind      text NOT NULL,
    severity  text NOT NULL,
    key       text NOT NULL,
    field     text,
    detail    text NOT NULL,
    raw       text
);
-- A finding's identity: a hash of its text (older tables gain the column; their
-- rows, without one, are replaced by the next run's).
ALTER TABLE phasegate_findings ADD COLUMN IF NOT EXISTS ident text;
CREATE INDEX IF NOT EXISTS phasegate_findings_ident ON phasegate_findings (type_id, ident);
CREATE INDEX IF NOT EXISTS phasegate_findings_run ON phasegate_findings (run_id, type_id);
