"""``python -m fake_provider --host 127.0.0.1 --port 9100`` (port 0 picks a free one)."""

from __future__ import annotations

import argparse

from fake_provider.runner import bind, make_server
from providers.pricing import PriceBook


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fake_provider")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="0 picks a free port")
    parser.add_argument("--prices", help="a JSON file of price overrides")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    server = make_server(PriceBook(args.prices), args.log_level)
    # Scripts and tests read this line to learn the port when they asked for port 0.
    print(f"fake provider listening on http://{args.host}:{port}", flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
