-- eas-gateway schema 012: admin page sessions that end when their owner signs out.
-- A session is a signed cookie every node can check by itself; signing out puts its id
-- here until it would have expired anyway, so a copied cookie is worthless after that.

CREATE TABLE admin_sessions_ended (
    session_id text        PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
COMMENT ON TABLE admin_sessions_ended IS
    'Admin page sessions signed out before they expired (the cookie''s jti); rows go once expires_at has passed';
