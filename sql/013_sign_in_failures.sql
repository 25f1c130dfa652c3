-- eas-gateway schema 013: failed EAS sign-ins, shared by every node (usm/signin.py).
-- One row per (user, client address): how many wrong passwords in a row, and when the last one
-- came. A right password from that address deletes the row; rows older than the window are gone.

CREATE TABLE sign_in_failures (
    user_name    text        NOT NULL,
    client       text        NOT NULL,
    failures     integer     NOT NULL,
    last_failure timestamptz NOT NULL,
    PRIMARY KEY (user_name, client)
);
CREATE INDEX sign_in_failures_recent ON sign_in_failures (user_name, last_failure);
COMMENT ON TABLE sign_in_failures IS
    'Wrong EAS passwords per (user, client address); deleting a user''s rows lifts their sign-in delays';
