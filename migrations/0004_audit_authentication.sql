-- How the owner authenticated each of their actions: deep_link | consent_link | owner_sign_in
-- (NULL for the other actors, and for records from before this column). Part of the record's
-- hash only when not NULL (docs/AUDIT.md). Schema reference: docs/STORAGE.md.
ALTER TABLE audit_events ADD COLUMN authentication TEXT;
