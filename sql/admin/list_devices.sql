-- List devices: protocol, user agent, policy and wipe state, last request.
--   psql "$DATABASE_URL" -f sql/admin/list_devices.sql                        (all users)
--   psql "$DATABASE_URL" -v user=alice@example.com -f sql/admin/list_devices.sql
-- Read-only; safe at any time.
\set ON_ERROR_STOP on
\if :{?user}
\else
\set user ''
\endif
SELECT user_name, device_id, device_type, protocol_version, last_seen, policy, wipe, folder_sync_key,
       synced_folders, user_agent
  FROM eas_devices
 WHERE :'user' = '' OR user_name = :'user'
 ORDER BY user_name, last_seen DESC;
