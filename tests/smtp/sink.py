"""A local SMTP server for ketcare's delivery test (aiosmtpd): it listens on 127.0.0.1 at the
port given, accepts every message and prints each as one JSON line (envelope and text) on
standard output — `text` is the body decoded from its transfer encoding — after a first line
`ready`. No message leaves the machine."""

import email
import json
import sys
import threading

from aiosmtpd.controller import Controller


class Sink:
    async def handle_DATA(self, server, session, envelope):
        print(
            json.dumps(
                {
                    "from": envelope.mail_from,
                    "to": envelope.rcpt_tos,
                    "data": envelope.content.decode("utf-8", "replace"),
                    "text": email.message_from_bytes(envelope.content)
                    .get_payload(decode=True)
                    .decode("utf-8", "replace"),
                }
            ),
            flush=True,
        )
        return "250 OK"


controller = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
threading.Event().wait()
