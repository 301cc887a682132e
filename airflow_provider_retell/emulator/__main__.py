"""CLI: ``python -m airflow_provider_retell.emulator --port 0 --api-key KEY [--seed FILE] [--time-scale X]``.

The first (and only) stdout line is the base URL, printed once the socket listens. Logs go to stderr.
SIGINT / SIGTERM stop the server cleanly with exit status 0.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

API_KEY_ENV = "RETELL_EMULATOR_API_KEY"
DEFAULT_HOST = "127.0.0.1"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_retell.emulator",
        description="Serve the Retell API emulator. Prints its base URL as the first stdout line.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free port (default)")
    parser.add_argument("--api-key", default=None, help=f"the accepted API key (default: ${API_KEY_ENV})")
    parser.add_argument("--seed", default=None, help="seed file (YAML or JSON); default: the bundled seed")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=None,
        help="multiplies every duration, 0.01 = 100x faster, 0 = instant (default: the seed's, else 1)",
    )
    parser.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug", "trace"]
    )
    return parser


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    api_key = args.api_key or os.environ.get(API_KEY_ENV)
    if not api_key:
        _parser().error(f"an API key is required: --api-key KEY or ${API_KEY_ENV}")
    if args.time_scale is not None and args.time_scale < 0:
        _parser().error("--time-scale must be >= 0")
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper() if args.log_level != "trace" else 5)
    log = logging.getLogger("airflow_provider_retell.emulator")

    import uvicorn

    from .app import create_app
    from .seed import SeedError

    try:
        app = create_app(api_key, seed=args.seed, time_scale=args.time_scale)
    except SeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not _is_loopback(args.host):
        log.warning("binding non-loopback address %s: the emulator is reachable from the network", args.host)
    try:
        sock = _bind(args.host, args.port)
    except OSError as exc:
        print(f"error: cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    sys.stdout.write(f"http://{shown}:{port}\n")
    sys.stdout.flush()

    config = uvicorn.Config(
        app,
        log_level=args.log_level,
        access_log=args.log_level in ("info", "debug", "trace"),
        timeout_graceful_shutdown=5,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal it caught once it has shut down; with these handlers in place
    # that re-raise is a no-op, so a SIGTERM/SIGINT stop ends with exit status 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
