-- eas-gateway schema 001: devices, their policy state, and the folder hierarchy.
-- Every table is keyed by user_name first: nothing joins across users, so the
-- tables can be partitioned by user when one PostgreSQL is not enough.

CREATE TABLE devices (
    user_name          text        NOT NULL,
    device_id          text        NOT NULL,
    device_type        text        NOT NULL,
    user_agent         text,
    protocol_version   text,
    device_information jsonb       NOT NULL DEFAULT '{}',
    policy_key         bigint,
    pending_policy_key bigint,
    first_seen         timestamptz NOT NULL DEFAULT now(),
    last_seen          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_name, device_id)
);
COMMENT ON TABLE devices IS
    'One row per (user, phone). Deleting a row makes the phone start over: it is asked to provision and to resync everything.';
COMMENT ON COLUMN devices.device_information IS
    'Settings/DeviceInformation as the phone sent it (Model, OS, UserAgent, ...), MS-ASCMD 2.2.3.46';
COMMENT ON COLUMN devices.policy_key IS
    'PolicyKey the phone acknowledged (Provision phase 2, MS-ASPROV 3.1.5.1). NULL: not provisioned; set NULL to force a new Provision.';
COMMENT ON COLUMN devices.pending_policy_key IS
    'Temporary PolicyKey handed out in Provision phase 1, waiting for the phone''s acknowledgement';

CREATE TABLE folder_ids (
    user_name   text    NOT NULL,
    server_id   integer NOT NULL,
    upstream_id text    NOT NULL,
    PRIMARY KEY (user_name, server_id),
    UNIQUE (user_name, upstream_id)
);
COMMENT ON TABLE folder_ids IS
    'The EAS ServerId of each upstream folder of a user, shared by all the user''s devices and never reused, so that a device''s folder state survives a FolderSync from key 0. upstream_id is the JMAP Mailbox id (or virtual:outbox).';

CREATE TABLE folder_sync (
    user_name     text    NOT NULL,
    device_id     text    NOT NULL,
    sync_key      integer NOT NULL,
    last_response bytea   NOT NULL,
    PRIMARY KEY (user_name, device_id),
    FOREIGN KEY (user_name, device_id) REFERENCES devices ON DELETE CASCADE
);
COMMENT ON TABLE folder_sync IS
    'FolderSync state of a device: the current SyncKey and the WBXML response that created it, replayed when the phone resends the previous key because it lost that response. Delete the row to make the phone fetch the hierarchy again.';

CREATE TABLE device_folders (
    user_name        text    NOT NULL,
    device_id        text    NOT NULL,
    server_id        integer NOT NULL,
    parent_server_id integer,
    display_name     text    NOT NULL,
    folder_type      integer NOT NULL,
    PRIMARY KEY (user_name, device_id, server_id),
    FOREIGN KEY (user_name, device_id) REFERENCES devices ON DELETE CASCADE
);
COMMENT ON TABLE device_folders IS
    'The folders a device has been told about, as of its current FolderSync key. folder_type is the MS-ASCMD 2.2.3.186.3 Type (2 Inbox, 3 Drafts, 4 Deleted Items, 5 Sent Items, 6 Outbox, 12 user mail folder).';
