-- eas-gateway schema 014: who may sync (usm/access.py), and what admins did.
-- device_rules: Exchange-style device access rules. A rule names a field of the request
-- (DeviceType, User-Agent or DeviceId), a case-insensitive pattern (* and ? as in shell
-- globs) and an access level; user_name NULL makes it apply to every user. For a request the
-- user's own rules are tried before the global ones, DeviceId rules before User-Agent before
-- DeviceType ones; the first that matches decides; none: the default (EAS_DEVICE_ACCESS).
-- device_blocks: devices blocked until a time (a sync loop the gateway saw, or an admin).
-- admin_audit: every admin action, from the CLI (actor cli:<login>) or the page (web:admin).

CREATE TABLE device_rules (
    id         bigserial   PRIMARY KEY,
    user_name  text,
    field      text        NOT NULL CHECK (field IN ('device_id', 'user_agent', 'device_type')),
    pattern    text        NOT NULL CHECK (pattern <> ''),
    access     text        NOT NULL CHECK (access IN ('allow', 'block', 'quarantine')),
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE device_rules IS
    'Device access rules: user_name NULL = every user; the first matching rule decides (usm/access.py)';

CREATE TABLE device_blocks (
    user_name  text        NOT NULL,
    device_id  text        NOT NULL,
    until      timestamptz NOT NULL,
    reason     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_name, device_id)
);
COMMENT ON TABLE device_blocks IS 'Devices refused until a time; deleting a row lets the device in again';

CREATE TABLE admin_audit (
    id     bigserial   PRIMARY KEY,
    at     timestamptz NOT NULL DEFAULT now(),
    actor  text        NOT NULL,
    action text        NOT NULL,
    detail text        NOT NULL
);
COMMENT ON TABLE admin_audit IS 'Every admin action: who, when, what';
