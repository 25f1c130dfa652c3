#!/usr/bin/env python3
"""The submission server behind the test/demo Cyrus upstream.

Cyrus has no MTA of its own: JMAP EmailSubmission hands each message to the
SMTP server named by `smtp_host`, and Cyrus offers the submission capability
only while something answers there (../shared/notes/cyrus-upstream.md).
This listener is that something, standard library only:

- every accepted message is kept as DIR/N.eml with its envelope in DIR/N.json
  (N counts from 1), so that tests can see what left and how often;
- recipients in a local domain are delivered to Cyrus over LMTP, so that
  bob@example.com finds alice's mail in his INBOX; others are only kept.

    smtp-relay.py --listen 127.0.0.1:PORT --lmtp SOCKET --keep DIR [--local-domain example.com]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import smtplib
import socket

log = logging.getLogger("smtp-relay")
MAX_SIZE = 50 * 1024 * 1024


def deliver_lmtp(path: str, sender: str, recipients: list[str], data: bytes) -> dict[str, str]:
    """LMTP, one transaction per recipient: LMTP answers DATA once per
    recipient, which smtplib does not read; one at a time it does."""
    failed: dict[str, str] = {}
    for rcpt in recipients:
        try:
            with smtplib.LMTP(path) as lmtp:
                lmtp.sendmail(sender, [rcpt], data)
        except smtplib.SMTPRecipientsRefused as error:
            code, text = error.recipients[rcpt]
            failed[rcpt] = f"{code} {text.decode(errors='replace')}"
        except (OSError, smtplib.SMTPException) as error:
            failed[rcpt] = f"LMTP: {error}"
    return failed


class Relay:
    def __init__(self, lmtp: str, keep: str, local_domains: set[str]):
        self.lmtp = lmtp
        self.keep = keep
        self.local_domains = local_domains
        os.makedirs(keep, exist_ok=True)
        names = [int(n.split(".")[0]) for n in os.listdir(keep) if n.endswith(".eml")]
        self.counter = max(names, default=0)

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def reply(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        sender: str | None = None
        recipients: list[str] = []
        await reply("220 localhost eas-gateway test relay")
        try:
            while line := await reader.readline():
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                verb, _, arg = text.partition(" ")
                verb = verb.upper()
                if verb == "EHLO":
                    writer.write(
                        b"250-localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
                        b"250-ENHANCEDSTATUSCODES\r\n" + f"250 SIZE {MAX_SIZE}\r\n".encode()
                    )
                    await writer.drain()
                elif verb == "HELO":
                    await reply("250 localhost")
                elif verb == "MAIL":
                    sender = address(arg, "FROM:")
                    recipients = []
                    if sender is None:
                        await reply("501 5.5.4 Syntax: MAIL FROM:<address>")
                    else:
                        await reply("250 2.1.0 OK")
                elif verb == "RCPT":
                    rcpt = address(arg, "TO:")
                    if sender is None:
                        await reply("503 5.5.1 MAIL first")
                    elif not rcpt:
                        await reply("501 5.5.4 Syntax: RCPT TO:<address>")
                    else:
                        recipients.append(rcpt)
                        await reply("250 2.1.5 OK")
                elif verb == "DATA":
                    if sender is None or not recipients:
                        await reply("503 5.5.1 need MAIL and RCPT first")
                        continue
                    await reply("354 end with <CRLF>.<CRLF>")
                    data = await read_data(reader)
                    if data is None:
                        await reply("552 5.3.4 message too big")
                    else:
                        await reply(await self.accept(sender, recipients, data))
                    sender, recipients = None, []
                elif verb == "RSET":
                    sender, recipients = None, []
                    await reply("250 2.0.0 OK")
                elif verb == "NOOP":
                    await reply("250 2.0.0 OK")
                elif verb == "QUIT":
                    await reply("221 2.0.0 bye")
                    break
                else:
                    await reply("502 5.5.2 command not implemented")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def accept(self, sender: str, recipients: list[str], data: bytes) -> str:
        self.counter += 1
        n = self.counter
        local = [r for r in recipients if r.rpartition("@")[2].lower() in self.local_domains]
        failed: dict[str, str] = {}
        if local:
            failed = await asyncio.to_thread(deliver_lmtp, self.lmtp, sender, local, data)
        envelope = {"from": sender, "to": recipients, "local": local, "failed": failed}
        with open(os.path.join(self.keep, f"{n}.eml"), "wb") as f:
            f.write(data)
        with open(os.path.join(self.keep, f"{n}.json"), "w") as f:
            json.dump(envelope, f)
        log.info("message %d from %s to %s, local failures %s", n, sender, recipients, failed)
        if failed and len(failed) == len(recipients):
            return "550 5.1.1 no recipient accepted: " + "; ".join(failed.values())
        return f"250 2.0.0 queued as {n}"


def address(arg: str, keyword: str) -> str | None:
    if not arg.upper().startswith(keyword):
        return None
    rest = arg[len(keyword):].strip()
    if not rest.startswith("<") or ">" not in rest:
        return None
    return rest[1:rest.index(">")]


async def read_data(reader: asyncio.StreamReader) -> bytes | None:
    lines: list[bytes] = []
    size = 0
    while True:
        line = await reader.readline()
        if not line:
            raise asyncio.IncompleteReadError(b"", None)
        if line in (b".\r\n", b".\n"):
            break
        if line.startswith(b".."):
            line = line[1:]
        size += len(line)
        if size <= MAX_SIZE:
            lines.append(line)
    return b"".join(lines) if size <= MAX_SIZE else None


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--lmtp", required=True, help="Cyrus' LMTP unix socket")
    parser.add_argument("--keep", required=True, help="directory for N.eml/N.json")
    parser.add_argument("--local-domain", action="append", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    relay = Relay(args.lmtp, args.keep, {d.lower() for d in args.local_domain or ["example.com"]})
    host, _, port = args.listen.rpartition(":")
    server = await asyncio.start_server(relay.session, host, int(port), family=socket.AF_INET)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
