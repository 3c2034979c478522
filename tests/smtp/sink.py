"""A local SMTP server for ketcare's delivery test (aiosmtpd): it listens on 127.0.0.1 at the
port given, accepts every message and prints each as one JSON line (envelope and text, and
whether it came over TLS) on standard output — `text` is the body decoded from its transfer
encoding — after a first line `ready`. No message leaves the machine.

With `tls CERT KEY` after the port it speaks TLS from the first byte; with `starttls CERT KEY`
it requires STARTTLS before anything else."""

import email
import json
import ssl
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
                    "tls": session.ssl is not None
                    or server.transport.get_extra_info("ssl_object") is not None,
                    "data": envelope.content.decode("utf-8", "replace"),
                    "text": email.message_from_bytes(envelope.content)
                    .get_payload(decode=True)
                    .decode("utf-8", "replace"),
                }
            ),
            flush=True,
        )
        return "250 OK"


options = {}
if len(sys.argv) > 2:
    mode, cert, key = sys.argv[2:5]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    if mode == "tls":
        options["ssl_context"] = context
    else:
        options["tls_context"] = context
        options["require_starttls"] = True
controller = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]), **options)
controller.start()
print("ready", flush=True)
threading.Event().wait()
