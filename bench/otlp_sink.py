"""``python -m bench.otlp_sink --port N``: an OTLP/HTTP receiver that only counts what it gets.

The telemetry benchmark points the api and the worker at it, so the figures include the real
cost of exporting (serialising and posting batches), without a collector to install.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

import uvicorn

received: Counter[str] = Counter()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        received[scope["path"] + " bytes"] += len(message.get("body", b""))
        more = message.get("more_body", False)
    if scope["method"] == "POST":
        received[scope["path"]] += 1
        body, kind = b"", b"application/x-protobuf"  # an empty Export*ServiceResponse
    else:
        body, kind = json.dumps(received).encode(), b"application/json"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind)]})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.otlp_sink")
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
