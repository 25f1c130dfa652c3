-- eas-gateway schema 002: item sync state (MS-ASCMD Sync), one "collection"
-- per (user, device, folder). The SyncKey chain is described in
-- ../shared/design/ARCHITECTURE.md ("The sync model").

CREATE TABLE collections (
    user_name      text        NOT NULL,
    device_id      text        NOT NULL,
    collection_id  integer     NOT NULL,
    sync_key       integer     NOT NULL,
    upstream_state text,
    filter_type    smallint    NOT NULL DEFAULT 0,
    options        jsonb       NOT NULL DEFAULT '{}',
    next_item      integer     NOT NULL DEFAULT 1,
    last_response  bytea       NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_name, device_id, collection_id),
    FOREIGN KEY (user_name, device_id) REFERENCES devices ON DELETE CASCADE
);
COMMENT ON TABLE collections IS
    'Item sync state of one folder on one device. Delete a row to make the phone sync that folder again from scratch (it gets Sync Status 3 and starts over from SyncKey 0).';
COMMENT ON COLUMN collections.collection_id IS 'The folder''s ServerId (folder_ids.server_id), the CollectionId the phone sends';
COMMENT ON COLUMN collections.sync_key IS 'The current SyncKey (generation). The phone may send it, or the one before it (its answer was lost: last_response is sent again)';
COMMENT ON COLUMN collections.upstream_state IS 'Upstream state (JMAP Email state) the items and pending rows account for. NULL: the folder is listed again at the next Sync';
COMMENT ON COLUMN collections.filter_type IS 'MS-ASCMD FilterType: 0 all, 1 one day, 2 three days, 3 one week, 4 two weeks, 5 one month';
COMMENT ON COLUMN collections.options IS 'The Sync Options the phone sent last (body preferences, MIME support); phones send them once and rely on the server to keep them';
COMMENT ON COLUMN collections.next_item IS 'Next item number: ServerIds are "<collection_id>:<number>" and never reused within a collection';
COMMENT ON COLUMN collections.last_response IS 'The WBXML Collection element that announced sync_key, replayed byte for byte when the phone resends the previous key';

CREATE TABLE collection_items (
    user_name     text    NOT NULL,
    device_id     text    NOT NULL,
    collection_id integer NOT NULL,
    item          integer NOT NULL,
    upstream_id   text    NOT NULL,
    version       text    NOT NULL,
    PRIMARY KEY (user_name, device_id, collection_id, item),
    UNIQUE (user_name, device_id, collection_id, upstream_id),
    FOREIGN KEY (user_name, device_id, collection_id) REFERENCES collections ON DELETE CASCADE
);
COMMENT ON TABLE collection_items IS
    'The items the phone has in a collection, as of the current SyncKey: its ServerId ("<collection_id>:<item>"), the upstream id (JMAP Email id) and the version last sent (for mail: the keywords, i.e. read/flag/categories).';

CREATE TABLE collection_pending (
    user_name     text    NOT NULL,
    device_id     text    NOT NULL,
    collection_id integer NOT NULL,
    upstream_id   text    NOT NULL,
    position      bigint  NOT NULL,
    PRIMARY KEY (user_name, device_id, collection_id, upstream_id),
    FOREIGN KEY (user_name, device_id, collection_id) REFERENCES collections ON DELETE CASCADE
);
CREATE INDEX collection_pending_order ON collection_pending (user_name, device_id, collection_id, position);
COMMENT ON TABLE collection_pending IS
    'Upstream items that may differ from what the phone has (new, changed, gone), waiting for the next Sync because the last one was full (WindowSize; the phone was told MoreAvailable). Sent in position order: newest mail first after a listing.';

ALTER TABLE devices ADD COLUMN sync_request jsonb;
COMMENT ON COLUMN devices.sync_request IS
    'The last full Sync request (collections, window sizes, wait), which an empty or a Partial Sync request stands for (MS-ASCMD 3.1.5.3)';
