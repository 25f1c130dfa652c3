-- eas-gateway schema 007: protocol traces switched on at run time.
--
-- A row asks every gateway node to log the requests and responses of a user
-- (device_id '' = all the user's devices) as readable XML, bodies truncated,
-- until the time given. Rows are written by `eas-gateway admin trace` or by
-- hand; the trigger tells the nodes at once (NOTIFY), no restart needed:
--   INSERT INTO protocol_trace VALUES ('alice@example.com', '', now() + interval '1 hour');
--   DELETE FROM protocol_trace WHERE user_name = 'alice@example.com';

CREATE TABLE protocol_trace (
    user_name text        NOT NULL,
    device_id text        NOT NULL DEFAULT '',
    until     timestamptz NOT NULL,
    PRIMARY KEY (user_name, device_id)
);
COMMENT ON TABLE protocol_trace IS
    'Whose ActiveSync traffic the gateway logs in full (logger eas_gateway.trace), until when. device_id '''' means all devices of the user.';

CREATE FUNCTION eas_trace_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('eas_gateway_trace', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER protocol_trace_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON protocol_trace
    FOR EACH STATEMENT EXECUTE FUNCTION eas_trace_changed();
