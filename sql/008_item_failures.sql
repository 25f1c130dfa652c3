-- eas-gateway schema 008: loop protection. An item that cannot be converted
-- for the phone is left out of the Sync answer and tried again at the next
-- Sync; after a few failures it is skipped (the rest of the folder syncs) and
-- stays listed here for the admin (`eas-gateway admin device`). It is tried
-- again when it changes upstream, or when the folder is synced from scratch
-- (deleting the collection deletes its rows).

CREATE TABLE item_failures (
    user_name     text        NOT NULL,
    device_id     text        NOT NULL,
    collection_id integer     NOT NULL,
    upstream_id   text        NOT NULL,
    failures      integer     NOT NULL,
    skipped       boolean     NOT NULL DEFAULT false,
    last_error    text        NOT NULL,
    first_failed  timestamptz NOT NULL DEFAULT now(),
    last_failed   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_name, device_id, collection_id, upstream_id),
    FOREIGN KEY (user_name, device_id, collection_id) REFERENCES collections ON DELETE CASCADE
);
COMMENT ON TABLE item_failures IS
    'Items the gateway failed to send to a device (conversion errors): how often, the last error, and whether they are now skipped. Delete a row to give the item a fresh count.';
COMMENT ON COLUMN item_failures.skipped IS
    'true: failed too often; the device does not get this item until it changes upstream or the folder is synced again';

CREATE OR REPLACE VIEW eas_devices AS
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
           AS synced_folders,
       (SELECT count(*) FROM item_failures i WHERE i.user_name = d.user_name AND i.device_id = d.device_id
           AND i.skipped) AS skipped_items
  FROM devices d
  LEFT JOIN folder_sync f ON f.user_name = d.user_name AND f.device_id = d.device_id;
COMMENT ON VIEW eas_devices IS
    'One line per device for operators: protocol, user agent, policy and wipe state, last request, how far it synced, items skipped by loop protection.';
