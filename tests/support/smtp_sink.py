#!/usr/bin/env python3
"""A real SMTP server for the mail tests (aiosmtpd, from PyPI), on loopback.

  smtp_sink.py PORT DIR

Every accepted message is parsed with Python's own MIME parser and written to DIR as JSON
(envelope, headers, and each leaf part with its content type, file name and decoded text), so
the tests check what a mail client would see. Recipients starting with "reject" get a 550.
Prints "ready" once listening; stops when stdin closes.
"""
import email
import email.policy
import json
import os
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out):
        self.out = out

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        parts = []
        for part in message.walk():
            if part.is_multipart():
                continue
            parts.append({
                "content_type": part.get_content_type(),
                "filename": part.get_filename(),
                # Text parts as a mail client shows them; others (an application/json
                # attachment) as their decoded bytes, read as UTF-8.
                "text": part.get_content() if part.get_content_maintype() == "text"
                else part.get_payload(decode=True).decode("utf-8", "replace"),
            })
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(message["From"]),
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "message_id": str(message["Message-ID"]),
            "content_type": message.get_content_type(),
            "parts": parts,
        }
        count = len([f for f in os.listdir(self.out) if f.endswith(".json")])
        path = os.path.join(self.out, "%05d.json" % count)
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 Message accepted"


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Sink(out), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
