-- Lift a user's sign-in delays (after a password change, or a phone that kept an old one).
--   psql "$DATABASE_URL" -v user=alice@example.com -f sql/admin/lift_sign_in_delays.sql
-- The delays are usm/signin.py's: per (user, client address) and per user, shared by every node.
\set ON_ERROR_STOP on
DELETE FROM sign_in_failures WHERE user_name = lower(:'user');
-- Written to the audit log, as the CLI and the admin page do.
INSERT INTO admin_audit (actor, action, detail) VALUES ('sql:' || current_user, 'lift-sign-in-delays', 'sign-in delays of ' || :'user' || ' lifted (sql/admin)');
