"""``lrpath relay``: receive the bucket's event notifications and announce each data drop once.

Point an S3 or MinIO bucket notification (``s3:ObjectCreated:*``, webhook target) at
``http://HOST:PORT/``. A record whose object key is ``<prefix>/incoming/<name>/_READY`` announces
drop ``<name>`` (the ``_ANNOUNCED`` marker, then ``lrpath.data.arrived``); the marker makes a
repeated or concurrent notification a no-op. Other keys and events get 204, a body that is not
JSON gets 400. Stdlib only (``http.server``), so a relay starts in a fraction of a second.
"""

from __future__ import annotations

import json
import logging
import posixpath
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote_plus

import typer

from flows.cli_options import store_option
from lrpath_core import announce, layout
from lrpath_core.errors import LrpathError
from lrpath_core.storage import Store

Emitter = announce.Emitter
MAX_BODY = 1 << 20

log = logging.getLogger(__name__)


class RelayError(LrpathError):
    """The relay cannot serve this store as configured."""


def prefect_emitter(store_url: str, drop: str) -> None:
    from flows.watch_incoming import emit_arrived

    emit_arrived(store_url, drop)


def default_prefix(store: Store) -> str:
    """``bucket/prefix`` of an object store: what its notifications name as bucket and key."""
    if store.is_local:
        raise RelayError(
            f"{store.url} is a local folder: give --prefix BUCKET/PREFIX that its notifications name"
        )
    return store.root.strip("/")


def drops_in(notification: object, prefix: str) -> list[str]:
    """Names of the drops whose ``_READY`` object a notification reports created under ``prefix``."""
    records = notification.get("Records") if isinstance(notification, dict) else None
    found: list[str] = []
    for record in records if isinstance(records, list) else []:
        try:
            event = str(record["eventName"])
            s3 = record["s3"]
            path = f"{s3['bucket']['name']}/{unquote_plus(str(s3['object']['key']))}"
        except (KeyError, TypeError):
            continue
        if not event.startswith(("s3:ObjectCreated", "ObjectCreated")):
            continue
        name = drop_of(path, prefix)
        if name is not None and name not in found:
            found.append(name)
    return found


def drop_of(path: str, prefix: str) -> str | None:
    """``name`` when ``path`` is ``<prefix>/incoming/<name>/_READY`` with a valid drop name."""
    head = posixpath.join(prefix.strip("/"), layout.INCOMING) + "/"
    if not path.startswith(head):
        return None
    parts = path[len(head) :].split("/")
    if len(parts) != 2 or parts[1] != layout.READY_MARKER or not layout.NAME_PATTERN.match(parts[0]):
        return None
    return parts[0]


class Relay:
    """Announce the drops a notification reports: each one once, whatever the repeats."""

    def __init__(self, store: Store, prefix: str | None = None, emit: Emitter = prefect_emitter) -> None:
        self.store, self.emit = store, emit
        self.prefix = (prefix or default_prefix(store)).strip("/")

    def handle(self, notification: object) -> list[str]:
        """The drops this notification announced (an empty list for repeats and other keys)."""
        announced = announce.announce_drops(self.store, drops_in(notification, self.prefix), self.emit)
        for name in announced:
            log.info("announced drop %s of %s", name, self.store.url)
        return announced


def make_server(relay: Relay, host: str, port: int, token: str | None = None) -> ThreadingHTTPServer:
    """An HTTP server for ``relay`` (``port`` 0: a free port, see ``server.server_address``)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._reply(200, {"relay": relay.store.url, "prefix": relay.prefix})

        def do_POST(self) -> None:  # noqa: N802
            if token and self.headers.get("Authorization") != f"Bearer {token}":
                self._reply(401, {"error": "missing or wrong bearer token"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._reply(413, {"error": "notification too large"})
                return
            try:
                notification = json.loads(self.rfile.read(length) or b"null")
            except (ValueError, UnicodeDecodeError):
                self._reply(400, {"error": "body is not JSON"})
                return
            announced = relay.handle(notification)
            if announced:
                self._reply(200, {"announced": announced})
            else:
                self._reply(204, None)

        def _reply(self, status: int, body: dict | None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
            log.debug("relay %s: " + format, self.client_address[0], *args)

    return ThreadingHTTPServer((host, port), Handler)


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="lrpath-relay", daemon=True)
    thread.start()
    return thread


def relay(
    prefix: str | None = typer.Option(
        None, help="BUCKET/PREFIX the notifications name for this store (default: an s3:// store's own)"
    ),
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8765, min=0, max=65535, help="port to listen on"),
    token: str | None = typer.Option(
        None, envvar="LRPATH_RELAY_TOKEN", help="require 'Authorization: Bearer TOKEN' on every notification"
    ),
    store: str = store_option(),
) -> None:
    """Receive S3/MinIO event notifications and announce each data drop once (lrpath.data.arrived)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    server = make_server(Relay(Store(store), prefix), host, port, token)
    bound_host, bound_port = server.server_address[:2]
    print(f"lrpath relay: announcing drops of {store} on http://{bound_host}:{bound_port}/")
    try:
        server.serve_forever()
    finally:
        server.server_close()
