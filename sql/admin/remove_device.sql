-- Remove a device and everything the gateway knows about it, a wipe request
-- included. If the phone comes back it is asked to Provision and syncs as new.
--   psql "$DATABASE_URL" -v user=alice@example.com -v device=DEVICEID -f sql/admin/remove_device.sql
-- Safe while the gateway serves (see sql/006_admin.sql). Fails if there is no such device.
\set ON_ERROR_STOP on
SELECT eas_remove_device(:'user', :'device') AS devices_removed;
-- Written to the audit log, as the CLI and the admin page do.
INSERT INTO admin_audit (actor, action, detail) VALUES ('sql:' || current_user, 'remove-device', 'device ' || :'device' || ' of ' || :'user' || ' removed (sql/admin)');
