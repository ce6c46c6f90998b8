"""uvicorn's httptools protocol with the two bounds it lacks: a header read timeout and a header
size limit.

Why: uvicorn times out only idle keep-alive connections. A connection that sends nothing, or
headers that never end, is held for ever, and httptools buffers a header of any size: one
connection without any key sent a 200 MiB header and the api grew by 199 MiB. Here a request's
headers must arrive within ``header_timeout`` seconds of the connection (or of the request's
first byte on a reused one), else the connection is closed; and past ``max_header_bytes`` of
headers the request gets 431 and the connection is closed, before any of it reaches the app
(what the client still sends meanwhile is read and dropped for a second, so that its socket
does not reset before it reads the 431).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 31\r\n"
    b"connection: close\r\n\r\n"
    b"request headers are too large\r\n"
)


LINGER_SECONDS = 1.0


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """One connection; ``bounded_protocol`` sets the bounds."""

    header_timeout: ClassVar[float] = 10.0
    max_header_bytes: ClassVar[int] = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_headers = True
        self._header_bytes = 0
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # dropped: the 431 is on its way, the connection closes shortly
        super().data_received(data)
        # Still in the headers after the whole chunk: every byte of it was headers.
        if self._in_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                self._refuse()

    def _refuse(self) -> None:
        self._disarm()
        self._refused = True
        self.transport.write(TOO_LARGE)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_headers:  # the next request on a kept-alive connection
            self._in_headers, self._header_bytes = True, 0
            self._arm()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        super().on_headers_complete()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def bounded_protocol(header_timeout: float, max_header_bytes: int) -> type[asyncio.Protocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with these bounds."""
    bounds = {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes}
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), bounds)
