-- Cross-account views for operators, maintained from each account's outbox: one row per
-- account, its email and status as of the last flushed audit record.
CREATE TABLE IF NOT EXISTS accounts (
  account_id  TEXT    PRIMARY KEY,
  email       TEXT    NOT NULL,
  status      TEXT    NOT NULL,          -- active | suspended | closing | closed
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS accounts_by_status ON accounts (status, account_id);
CREATE INDEX IF NOT EXISTS accounts_by_email ON accounts (email);

-- Every call to the operator API, written before the call is served.
CREATE TABLE IF NOT EXISTS operator_events (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  at          INTEGER NOT NULL,
  request_id  TEXT    NOT NULL,
  action      TEXT    NOT NULL,          -- the route, e.g. accounts.list, account.close
  target      TEXT,                      -- the account id, when there is one
  detail      TEXT                       -- JSON: filters, reason
);
