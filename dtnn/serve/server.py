"""Run the drawing page: bind a socket, then uvicorn serves the Starlette app on it.

dtnn binds the socket itself (instead of letting uvicorn do it) so a busy port or a
bad address is a one-line error before anything starts, and ``port=0`` picks a free
port that is printed in the "serving on" line.
"""
from __future__ import annotations

import socket
from typing import Optional

from dtnn.errors import ConfigError
from dtnn.log import get_logger

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv4 or IPv6), or ConfigError."""
    if not 0 <= int(port) <= 65535:
        raise ConfigError(f"--port must be in 0..65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: cannot resolve ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(checkpoint: str, host: str = "127.0.0.1", port: int = 8000,
          max_body: Optional[int] = None, log_level: str = "warning") -> None:
    """Load ``checkpoint`` once and serve the page and API until interrupted."""
    import uvicorn

    from dtnn.serve.app import DEFAULT_MAX_BODY, create_app
    from dtnn.serve.predictor import Predictor

    log = get_logger()
    if host in ("0.0.0.0", "::", ""):
        log.warning(f"--host {host or '(all)'}: the page and API are reachable from other "
                    "machines, with no authentication; use 127.0.0.1 unless that is meant")
    predictor = Predictor(checkpoint)          # UserError here: one line, exit 2
    sock = bind(host, port)
    app = create_app(predictor, max_body or DEFAULT_MAX_BODY)
    card = predictor.card()
    print(f"dtnn serve: {card['name']} ({card['parameters']:,} parameters, "
          f"{len(card['classes'])} classes) on {url_of(sock)}", flush=True)
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off",
                            server_header=False, timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])
