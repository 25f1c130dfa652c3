-- Let a blocked device in again (a sync-loop autoblock or an admin's block).
--   psql "$DATABASE_URL" -v user=alice@example.com -v device=ABC123 -f sql/admin/unblock_device.sql
-- Running gateways see it within EAS_ACCESS_RELOAD_SECONDS (10 s by default).
\set ON_ERROR_STOP on
DELETE FROM device_blocks WHERE user_name = lower(:'user') AND lower(device_id) = lower(:'device');
INSERT INTO admin_audit (actor, action, detail)
VALUES ('sql:' || current_user, 'unblock', 'device ' || :'device' || ' of ' || :'user' || ' let in again (sql/admin)');
