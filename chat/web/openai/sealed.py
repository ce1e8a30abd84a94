"""A compaction's `encrypted_content`: opaque to callers, it holds the model's summary, encoded and
checked, so that what a caller sends back is the summary this server gave it or a clean 400.

    cmp1.<base64url of the summary's UTF-8>.<the first 32 hex digits of its SHA-256>

It is not encrypted and not signed (the server holds no key): a caller that writes its own gets
an assistant message of its own words in the prompt, as it could by sending one (see
chat/upstream/chat_completions.py). The check stops a truncated or altered copy.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from chat.web.openai.errors import InvalidParameter

PREFIX = "cmp1"
_CHECK_HEX = 32


def seal(summary: str) -> str:
    data = summary.encode("utf-8", "surrogatepass")
    body = base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")
    return f"{PREFIX}.{body}.{_check(data)}"


def unseal(content: str, param: str) -> str:
    """The summary `content` holds; a 400 naming `param` for anything this server did not make."""
    prefix, _, rest = content.partition(".")
    body, _, check = rest.partition(".")
    try:
        data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)) if body.isascii() else b""
        summary = data.decode("utf-8", "surrogatepass")
    except (binascii.Error, ValueError):
        data, summary = b"", ""
    if prefix != PREFIX or not data or check != _check(data):
        raise InvalidParameter(
            "Invalid 'encrypted_content': send back a compaction item's encrypted_content as this server gave it.",
            param=param,
            code="invalid_encrypted_content",
        )
    return summary


def _check(data: bytes) -> str:
    return hashlib.sha256(b"compaction\0" + data).hexdigest()[:_CHECK_HEX]
