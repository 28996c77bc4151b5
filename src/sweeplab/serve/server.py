"""Running the dashboard: open the store read-only, bind the port, serve until interrupted.

The port is bound here, before uvicorn starts, so that a port in use is one line naming
``--port`` (exit 2) rather than uvicorn's log. Binding anything but a loopback address prints a
warning: the app has no login, and everyone who reaches the port can read the whole store.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from pathlib import Path
from typing import Callable

from sweeplab.errors import ConfigError
from sweeplab.store import Store

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; ``ConfigError`` naming the option when that fails."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise ConfigError(f"cannot resolve host {host!r} ({err.strerror}); give an address such as 127.0.0.1",
                          "--host") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {host} is already in use; choose another with --port",
                              "--port") from None
        if err.errno in (errno.EACCES, errno.EPERM):
            raise ConfigError(f"not allowed to listen on port {port} (ports below 1024 need root)",
                              "--port") from None
        raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror})", "--host") from None
    sock.set_inheritable(True)
    return sock


def serve(db: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          say: Callable[[str], None] = print) -> None:
    """Serve the store at ``db`` on ``host:port`` until interrupted (``StoreError`` when the store
    is missing or unreadable, ``ConfigError`` when the address cannot be bound)."""
    with Store(db, readonly=True) as store:
        store.list_studies()  # a corrupt file fails here, with a clear message, not on first page load
        sock = bind(host, port)
        try:
            import uvicorn  # after the checks: a bad store or port fails fast

            from .app import make_app

            bound = sock.getsockname()[1]
            shown = f"[{host}]" if ":" in host else host
            say(f"sweeplab dashboard: http://{shown}:{bound}/  (store {db}, read-only; Ctrl-C stops it)")
            if not is_loopback(host):
                say(f"warning: listening on {host}: anyone who can reach port {bound} can read every "
                    "study, config and result in this store (there is no login)")
            config = uvicorn.Config(make_app(store), log_level="warning", access_log=False,
                                    server_header=False, lifespan="off")
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            sock.close()
