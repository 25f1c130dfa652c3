-- Reset every device of a user (as reset_device.sql does for one).
--   psql "$DATABASE_URL" -v user=alice@example.com -f sql/admin/reset_user.sql
-- Safe while the gateway serves (see sql/006_admin.sql).
\set ON_ERROR_STOP on
SELECT eas_reset_user(:'user') AS devices_reset;
-- Written to the audit log, as the CLI and the admin page do.
INSERT INTO admin_audit (actor, action, detail) VALUES ('sql:' || current_user, 'reset-user', 'every device of ' || :'user' || ' reset (sql/admin)');
