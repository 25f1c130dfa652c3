-- Ask a device to wipe itself at its next request: kind=device (factory reset,
-- the default) or kind=account (only this account, EAS 16.1 devices only).
-- list_devices.sql shows when the phone acknowledges it.
--   psql "$DATABASE_URL" -v user=alice@example.com -v device=DEVICEID -f sql/admin/request_wipe.sql
--   psql "$DATABASE_URL" -v user=alice@example.com -v device=DEVICEID -v kind=account -f sql/admin/request_wipe.sql
-- Fails if there is no such device, or for an account-only wipe of a device below 16.1.
\set ON_ERROR_STOP on
\if :{?kind}
\else
\set kind device
\endif
SELECT eas_request_wipe(:'user', :'device', :'kind') AS wipes_requested;
-- Written to the audit log, as the CLI and the admin page do.
INSERT INTO admin_audit (actor, action, detail) VALUES ('sql:' || current_user, 'wipe', :'kind' || ' wipe requested for ' || :'device' || ' of ' || :'user' || ' (sql/admin)');
