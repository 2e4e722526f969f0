-- The audit trail: one row per state transition of an account, written from the account's
-- outbox. (account_id, seq) is the idempotency key: a retried flush inserts nothing twice.
-- Schema reference: docs/STORAGE.md.
CREATE TABLE IF NOT EXISTS audit_events (
  account_id    TEXT    NOT NULL,
  seq           INTEGER NOT NULL,
  at            INTEGER NOT NULL,      -- unix seconds
  actor         TEXT    NOT NULL,      -- orchestrator | owner | operator | stripe | system
  actor_id      TEXT,                  -- e.g. the orchestrator's Stripe account, the operator
  on_behalf_of  TEXT,                  -- whose authority: the account owner's email
  action        TEXT    NOT NULL,      -- e.g. account.created, token.issued
  request_id    TEXT,
  consent       TEXT,                  -- which consent authorised it (ToS version, grant id)
  before        TEXT,                  -- JSON summary of the state before
  after         TEXT,                  -- JSON summary of the state after
  prev_hash     TEXT    NOT NULL,
  hash          TEXT    NOT NULL,
  PRIMARY KEY (account_id, seq)
);
CREATE INDEX IF NOT EXISTS audit_events_by_time ON audit_events (at);
