-- Reset one device: it forgets nothing on the phone's side by itself, but at its
-- next request the gateway tells it to start over (FolderSync Status 9, Sync
-- Status 3); it fetches the folders and all items again and ends with exactly
-- the upstream's content. Provisioning and sent-mail records stay.
--   psql "$DATABASE_URL" -v user=alice@example.com -v device=DEVICEID -f sql/admin/reset_device.sql
-- Safe while the gateway serves (see sql/006_admin.sql). Fails if there is no such device.
\set ON_ERROR_STOP on
SELECT eas_reset_device(:'user', :'device') AS devices_reset;
-- Written to the audit log, as the CLI and the admin page do.
INSERT INTO admin_audit (actor, action, detail) VALUES ('sql:' || current_user, 'reset-device', 'sync state of ' || :'device' || ' of ' || :'user' || ' reset (sql/admin)');
