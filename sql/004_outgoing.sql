-- eas-gateway schema 004: mail the phones sent (SendMail, SmartReply,
-- SmartForward), so that a retried request sends nothing twice.

CREATE TABLE outgoing_mail (
    user_name   text        NOT NULL,
    device_id   text        NOT NULL,
    client_id   text        NOT NULL,
    marker      text        NOT NULL,
    state       text        NOT NULL CHECK (state IN ('sending', 'sent')),
    email_id    text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    PRIMARY KEY (user_name, device_id, client_id),
    FOREIGN KEY (user_name, device_id) REFERENCES devices ON DELETE CASCADE
);
COMMENT ON TABLE outgoing_mail IS
    'One row per message a phone asked to send. A request with a client_id seen before sends nothing again. Rows older than a month may be deleted.';
COMMENT ON COLUMN outgoing_mail.client_id IS 'ComposeMail ClientId (14.0+), or "mid:" and the Message-ID of the phone''s MIME (12.x has no ClientId)';
COMMENT ON COLUMN outgoing_mail.marker IS 'The keyword the stored copy carries upstream: after a crash it finds the copy, and the copy''s lack of $draft shows it was sent';
COMMENT ON COLUMN outgoing_mail.state IS 'sending: stored upstream or about to be, not known to be sent; sent: the upstream accepted it for delivery';
COMMENT ON COLUMN outgoing_mail.email_id IS 'The upstream email (JMAP Email id) of the stored copy';
