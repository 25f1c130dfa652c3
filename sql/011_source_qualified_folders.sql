-- eas-gateway schema 011: folders of every source.
-- A folder's upstream id now names its source: jmap:<Mailbox id>,
-- carddav:<address book path>, caldav:<calendar path>, virtual:outbox. The ids
-- stored so far are all JMAP Mailbox ids (or virtual:outbox): they are
-- qualified in place, keeping their ServerIds, so no phone resyncs after the
-- upgrade. device_folders.folder_type gains the PIM types (MS-ASCMD 2.2.3.186.3):
-- 7/15 tasks, 8/13 calendar, 9/14 contacts, 10/17 notes.

UPDATE folder_ids SET upstream_id = 'jmap:' || upstream_id
 WHERE upstream_id NOT LIKE 'virtual:%' AND upstream_id NOT LIKE 'jmap:%'
   AND upstream_id NOT LIKE 'carddav:%' AND upstream_id NOT LIKE 'caldav:%';

COMMENT ON TABLE folder_ids IS
    'The EAS ServerId of each upstream folder of a user, shared by all the user''s devices and never reused, so that a device''s folder state survives a FolderSync from key 0. upstream_id names the source: jmap:<Mailbox id>, carddav:<address book path>, caldav:<calendar path>, or virtual:outbox.';
COMMENT ON COLUMN collections.upstream_state IS
    'The state of the folder''s source that this generation has seen: the JMAP Email state for mail, sync:<DAV sync-token> or ctag:<getctag> for a DAV collection';
