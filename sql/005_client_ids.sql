-- eas-gateway schema 005: items the phones created (Sync Add with a ClientId).

CREATE TABLE collection_client_ids (
    user_name     text    NOT NULL,
    device_id     text    NOT NULL,
    collection_id integer NOT NULL,
    client_id     text    NOT NULL,
    item          integer NOT NULL,
    upstream_id   text    NOT NULL,
    PRIMARY KEY (user_name, device_id, collection_id, client_id),
    FOREIGN KEY (user_name, device_id, collection_id) REFERENCES collections ON DELETE CASCADE
);
COMMENT ON TABLE collection_client_ids IS
    'The ServerId given to each item a phone added (Sync Add ClientId), written with the generation that answered it: a retried Add gets the same ServerId and creates nothing new upstream.';
COMMENT ON COLUMN collection_client_ids.item IS 'Item number: the ServerId is "<collection_id>:<item>"';
COMMENT ON COLUMN collection_client_ids.upstream_id IS 'The upstream object created (JMAP Email id of the draft)';
