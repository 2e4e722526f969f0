-- Stripe webhooks: every accepted event, once (the id is the key), with the account it was
-- routed to and what it did. Rows for known accounts come from the account's outbox (a
-- `stripe.event` audit record); rows for unknown accounts are written by the webhook handler.
CREATE TABLE IF NOT EXISTS webhook_events (
  id          TEXT    PRIMARY KEY,      -- evt_...
  type        TEXT    NOT NULL,
  created     INTEGER NOT NULL,         -- the event's own time (unix seconds)
  account_id  TEXT,                     -- null when no account matched
  outcome     TEXT    NOT NULL,         -- applied | stale | ignored | unknown_account
  received_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_events_by_account ON webhook_events (account_id, created);

-- Stripe customers and subscriptions created by the worker, so events without our metadata
-- still find their account. Written from the outbox with the audit records that created them.
CREATE TABLE IF NOT EXISTS stripe_objects (
  stripe_id  TEXT PRIMARY KEY,          -- cus_... or sub_...
  account_id TEXT NOT NULL
);
