"""The admin api as the command sees it: where it is, the admin key, and errors in one line."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEFAULT_API_URL = "http://127.0.0.1:8000"
KEY_FILE = "admin_key"
TIMEOUT_SECONDS = 30.0


class CliError(Exception):
    """Anything the command reports as one line on stderr, exiting non-zero."""


def admin_key_of(flag: str | None) -> str:
    """The admin key: the flag, else ``RUNCAP_ADMIN_KEY``, else the file ``make run`` writes."""
    if flag:
        return flag
    if key := os.environ.get("RUNCAP_ADMIN_KEY", "").strip():
        return key
    path = Path(os.environ.get("RUNCAP_DATA_DIR") or ".runcap") / KEY_FILE
    try:
        key = path.read_text().strip()
    except OSError:
        key = ""
    if not key:
        raise CliError(
            f"no admin key: pass --admin-key, set RUNCAP_ADMIN_KEY, or run from the folder "
            f"where `make run` wrote {path}"
        )
    return key


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return response.reason_phrase


@dataclass
class Api:
    """A blocking client of the admin api; every failure becomes a ``CliError``."""

    url: str
    admin_key: str

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer of one request (text for CSV), or a ``CliError`` saying what failed."""
        headers = {"authorization": f"Bearer {self.admin_key}"}
        try:
            response = httpx.request(
                method,
                self.url.rstrip("/") + path,
                headers=headers,
                timeout=TIMEOUT_SECONDS,
                **kwargs,
            )
        except httpx.InvalidURL as err:
            raise CliError(f"invalid api url {self.url!r}: {err}") from None
        except httpx.TransportError as err:
            reason = str(err) or type(err).__name__
            raise CliError(
                f"cannot reach the runcap api at {self.url} ({reason}); is `make run` up? "
                "set --api-url or RUNCAP_API_URL"
            ) from None
        if response.status_code >= 400:
            raise CliError(f"{response.status_code} from {path}: {_message(response)}")
        if response.headers.get("content-type", "").startswith("text/csv"):
            return response.text
        try:
            return response.json()
        except ValueError:
            raise CliError(f"{path} did not answer JSON; is {self.url} a runcap api?") from None

    def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=clean)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=body)
