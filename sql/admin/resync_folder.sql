-- Make one folder sync again from scratch: on one device, or on all the user's
-- devices when no device is given. folder is the ServerId or the folder's name.
--   psql "$DATABASE_URL" -v user=alice@example.com -v folder=Inbox -f sql/admin/resync_folder.sql
--   psql "$DATABASE_URL" -v user=alice@example.com -v folder=7 -v device=DEVICEID -f sql/admin/resync_folder.sql
-- Safe while the gateway serves (see sql/006_admin.sql). Fails if the user has no such folder.
\set ON_ERROR_STOP on
\if :{?device}
SELECT eas_resync_folder(:'user', :'folder', :'device') AS devices_resynced;
\else
SELECT eas_resync_folder(:'user', :'folder') AS devices_resynced;
\endif
-- Written to the audit log, as the CLI and the admin page do.
INSERT INTO admin_audit (actor, action, detail) VALUES ('sql:' || current_user, 'resync-folder', 'folder ' || :'folder' || ' of ' || :'user' || ' synced again (sql/admin)');
