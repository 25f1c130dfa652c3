-- eas-gateway schema 009: the moves a phone made (MoveItems), kept for a day,
-- so that a retried MoveItems whose answer was lost gets the same new ServerId
-- (Status 3) rather than "no such item" (Status 1) for a move that happened.

CREATE TABLE moved_items (
    user_name          text        NOT NULL,
    device_id          text        NOT NULL,
    collection_id      integer     NOT NULL,
    item               integer     NOT NULL,
    destination_id     integer     NOT NULL,
    destination_item   integer     NOT NULL,
    moved_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_name, device_id, collection_id, item),
    FOREIGN KEY (user_name, device_id, collection_id) REFERENCES collections ON DELETE CASCADE
);
COMMENT ON TABLE moved_items IS
    'Where a phone''s MoveItems took each item ("<collection_id>:<item>" -> "<destination_id>:<destination_item>"), so that the same request again is answered the same. Rows older than a day are removed as new moves are recorded; a folder synced from scratch loses its rows.';
