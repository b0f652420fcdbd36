"""Run an ``http.server`` server in a background thread for the duration of a block."""

from __future__ import annotations

import threading
from contextlib import contextmanager

__all__ = ["serving"]


@contextmanager
def serving(server, name):
    """Serve ``server`` (a ``socketserver.BaseServer``) in a daemon thread; shut it down on exit."""
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
