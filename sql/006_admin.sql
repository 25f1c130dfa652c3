-- eas-gateway schema 006: remote wipe, and the operator's resets as SQL functions.
--
-- The resets are functions so that the admin CLI (eas-gateway admin ...) and
-- the psql scripts in sql/admin/ run the very same statements. Each is safe
-- while the gateway serves: a request that read the old state fails its
-- commit (the SyncKey it expected is gone) and changes nothing, and the phone
-- is told to start over at its next request:
--   FolderSync with its old key -> Status 9 -> FolderSync from key 0;
--   Sync with its old key -> Status 3 -> Sync from key 0 (the phone drops the
--   folder's items first, so nothing is duplicated);
--   a removed device -> not provisioned (HTTP 449 / Status 142) -> Provision.
-- Each reset wakes the user's held Pings (NOTIFY on the push channel), which
-- then tell the phone to sync.

ALTER TABLE devices
    ADD COLUMN wipe_kind text CHECK (wipe_kind IN ('device', 'account')),
    ADD COLUMN wipe_requested_at timestamptz,
    ADD COLUMN wipe_status smallint,
    ADD COLUMN wipe_acknowledged_at timestamptz;
COMMENT ON COLUMN devices.wipe_kind IS
    'Remote wipe asked for by an admin: device (factory reset, MS-ASPROV RemoteWipe) or account (only this account''s data, AccountOnlyRemoteWipe, EAS 16.1). While set, every request of the device is answered with the wipe directive; remove the device to let it sync again.';
COMMENT ON COLUMN devices.wipe_status IS
    'What the phone reported in its acknowledgement (MS-ASPROV 2.2.2.54.3): 1 wiped, 2 the wipe failed. NULL: not acknowledged yet';

-- Wake every held Ping and waiting Sync of the user (usm/push.py, kind "changed").
CREATE FUNCTION eas_wake(p_user text) RETURNS void LANGUAGE sql AS $$
    SELECT pg_notify('eas_gateway_push',
                     json_build_object('kind', 'changed', 'user', p_user, 'node', 'admin')::text);
$$;

CREATE FUNCTION eas_reset_device(p_user text, p_device text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    found integer;
BEGIN
    -- The device row stays (its provisioning and wipe state); its sync state goes.
    UPDATE devices SET sync_request = NULL, ping_request = NULL
     WHERE user_name = p_user AND device_id = p_device;
    GET DIAGNOSTICS found = ROW_COUNT;
    IF found = 0 THEN
        RAISE EXCEPTION 'user % has no device %', p_user, p_device;
    END IF;
    DELETE FROM folder_sync WHERE user_name = p_user AND device_id = p_device;
    DELETE FROM device_folders WHERE user_name = p_user AND device_id = p_device;
    DELETE FROM collections WHERE user_name = p_user AND device_id = p_device;
    PERFORM eas_wake(p_user);
    RETURN found;
END
$$;
COMMENT ON FUNCTION eas_reset_device(text, text) IS
    'Forget what the device has (hierarchy and items): it fetches everything again. Keeps its provisioning and sent-mail records. Fails if there is no such device.';

CREATE FUNCTION eas_reset_user(p_user text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    total integer := 0;
    d record;
BEGIN
    FOR d IN SELECT device_id FROM devices WHERE user_name = p_user LOOP
        total := total + eas_reset_device(p_user, d.device_id);
    END LOOP;
    RETURN total;
END
$$;
COMMENT ON FUNCTION eas_reset_user(text) IS
    'eas_reset_device for every device of the user; returns how many. The user''s folder ServerIds (folder_ids) stay: they are never reused.';

CREATE FUNCTION eas_remove_device(p_user text, p_device text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    found integer;
BEGIN
    DELETE FROM devices WHERE user_name = p_user AND device_id = p_device;
    GET DIAGNOSTICS found = ROW_COUNT;
    IF found = 0 THEN
        RAISE EXCEPTION 'user % has no device %', p_user, p_device;
    END IF;
    PERFORM eas_wake(p_user);
    RETURN found;
END
$$;
COMMENT ON FUNCTION eas_remove_device(text, text) IS
    'Delete the device and all its state (also a wipe request): if it comes back it provisions and syncs as a new device. Fails if there is no such device.';

CREATE FUNCTION eas_resync_folder(p_user text, p_folder text, p_device text DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    folder integer;
    found integer;
BEGIN
    -- The folder by ServerId, or by the name the user's devices show for it.
    IF p_folder ~ '^[0-9]{1,9}$' THEN
        SELECT server_id INTO folder FROM folder_ids WHERE user_name = p_user AND server_id = p_folder::integer;
    ELSE
        SELECT min(server_id) INTO folder FROM device_folders
         WHERE user_name = p_user AND display_name = p_folder
        HAVING count(DISTINCT server_id) = 1;
        IF folder IS NULL AND EXISTS (SELECT 1 FROM device_folders WHERE user_name = p_user
                                       AND display_name = p_folder) THEN
            RAISE EXCEPTION 'user % has several folders named %; give its ServerId', p_user, p_folder;
        END IF;
    END IF;
    IF folder IS NULL THEN
        RAISE EXCEPTION 'user % has no folder %', p_user, p_folder;
    END IF;
    DELETE FROM collections
     WHERE user_name = p_user AND collection_id = folder AND (p_device IS NULL OR device_id = p_device);
    GET DIAGNOSTICS found = ROW_COUNT;
    PERFORM eas_wake(p_user);
    RETURN found;
END
$$;
COMMENT ON FUNCTION eas_resync_folder(text, text, text) IS
    'Forget the items one folder has on one device (or on all the user''s devices when p_device is NULL): the phone syncs that folder again from scratch. p_folder is the ServerId or the folder''s name. Returns how many devices had it.';

CREATE FUNCTION eas_request_wipe(p_user text, p_device text, p_kind text DEFAULT 'device')
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    version text;
BEGIN
    SELECT protocol_version INTO version FROM devices WHERE user_name = p_user AND device_id = p_device;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'user % has no device %', p_user, p_device;
    END IF;
    -- MS-ASPROV 2.2.2.1: AccountOnlyRemoteWipe exists from 16.1 only; a full
    -- wipe in its place would erase the whole phone.
    IF p_kind = 'account' AND version IS DISTINCT FROM '16.1' THEN
        RAISE EXCEPTION 'device % speaks EAS %; an account-only wipe needs 16.1', p_device, version;
    END IF;
    UPDATE devices SET wipe_kind = p_kind, wipe_requested_at = now(), wipe_status = NULL,
                       wipe_acknowledged_at = NULL
     WHERE user_name = p_user AND device_id = p_device;
    PERFORM eas_wake(p_user);
    RETURN 1;
END
$$;
COMMENT ON FUNCTION eas_request_wipe(text, text, text) IS
    'Ask the device to wipe itself (p_kind device) or only this account (p_kind account, EAS 16.1) at its next request. Fails if there is no such device.';

CREATE FUNCTION eas_cancel_wipe(p_user text, p_device text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    found integer;
BEGIN
    UPDATE devices SET wipe_kind = NULL, wipe_requested_at = NULL, wipe_status = NULL,
                       wipe_acknowledged_at = NULL
     WHERE user_name = p_user AND device_id = p_device AND wipe_kind IS NOT NULL;
    GET DIAGNOSTICS found = ROW_COUNT;
    IF found = 0 THEN
        RAISE EXCEPTION 'user % has no device % with a wipe request', p_user, p_device;
    END IF;
    RETURN found;
END
$$;
COMMENT ON FUNCTION eas_cancel_wipe(text, text) IS
    'Withdraw a wipe request (useless once the phone has acknowledged it: it has wiped already). Fails if none is pending.';

CREATE VIEW eas_devices AS
SELECT d.user_name, d.device_id, d.device_type, d.protocol_version, d.user_agent,
       d.device_information ->> 'Model' AS model, d.first_seen, d.last_seen,
       CASE WHEN d.policy_key IS NOT NULL THEN 'provisioned'
            WHEN d.pending_policy_key IS NOT NULL THEN 'acknowledging'
            ELSE 'not provisioned' END AS policy,
       CASE WHEN d.wipe_kind IS NULL THEN NULL
            WHEN d.wipe_acknowledged_at IS NULL THEN d.wipe_kind || ' wipe requested'
            WHEN d.wipe_status = 1 THEN d.wipe_kind || ' wipe done'
            ELSE d.wipe_kind || ' wipe failed (Status ' || d.wipe_status || ')' END AS wipe,
       d.wipe_requested_at, d.wipe_acknowledged_at,
       f.sync_key AS folder_sync_key,
       (SELECT count(*) FROM collections c WHERE c.user_name = d.user_name AND c.device_id = d.device_id)
           AS synced_folders
  FROM devices d
  LEFT JOIN folder_sync f ON f.user_name = d.user_name AND f.device_id = d.device_id;
COMMENT ON VIEW eas_devices IS
    'One line per device for operators: protocol, user agent, policy and wipe state, last request, how far it synced.';
