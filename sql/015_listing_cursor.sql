-- eas-gateway schema 015: a folder's first sync lists it page by page.
-- The first Sync of a collection no longer reads the whole folder's ids into
-- collection_pending: it takes one page of the upstream's listing (newest
-- first) and remembers where the listing goes on; every later Sync that has
-- room in its window takes the next page. What changes upstream meanwhile
-- comes through the changes since upstream_state, as always.

ALTER TABLE collections ADD COLUMN listing text;
COMMENT ON COLUMN collections.listing IS
    'Where the upstream listing of a folder being synced for the first time goes on (the upstream driver''s cursor, e.g. the last ids seen); NULL once the whole folder was listed. Deleting the collection row (or SyncKey 0) starts the folder over.';
