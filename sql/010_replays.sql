-- eas-gateway schema 010: loop protection for answers a phone cannot take.
-- A phone that fails on an item of our answer asks again with the previous
-- SyncKey, forever. After 3 such repeats the items the answer added are
-- counted as failed (item_failures) and the phone is told to start the folder
-- over (Status 3); an item with failures is then sent alone, so that the one
-- the phone keeps rejecting is found and, after 3 failures, skipped.

ALTER TABLE collections ADD COLUMN replays smallint NOT NULL DEFAULT 0,
                        ADD COLUMN suspect text;
COMMENT ON COLUMN collections.replays IS
    'How often in a row the phone resent the previous SyncKey and got last_response again; 0 after every new generation';
COMMENT ON COLUMN collections.suspect IS
    'An item with failures that last_response sent alone (upstream id): when the phone asks with the current SyncKey it took it, and its failures are forgotten';

COMMENT ON TABLE item_failures IS
    'Items the gateway failed to get onto a device: conversion errors, or answers the phone kept rejecting (it resent the previous SyncKey again and again). An item with failures is sent alone; after 3 it is skipped and stays skipped until the folder is synced again (eas-gateway admin resync-folder, or delete the row).';
COMMENT ON COLUMN item_failures.skipped IS
    'true: failed too often; the device does not get this item until an admin resyncs the folder or deletes this row';
