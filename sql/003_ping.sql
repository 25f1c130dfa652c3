-- eas-gateway schema 003: the Ping parameters a device sent last.

ALTER TABLE devices ADD COLUMN ping_request jsonb;
COMMENT ON COLUMN devices.ping_request IS
    'HeartbeatInterval and folders of the device''s last Ping; a Ping without them means the same again (MS-ASCMD 2.2.3.88.1)';
