"""Content-part arrays of Chat Completions messages, checked as Azure OpenAI checks them: `text`
parts anywhere, `image_url` and `file` parts in user messages only; a malformed part is a 400
naming it. The journal keeps each request's body, so a test reads the parts it was sent."""

from __future__ import annotations

from typing import Any

from .protocol import invalid_request

_USER_TYPES = ("text", "image_url", "file")
_DETAILS = ("low", "high", "auto")


def validate_parts(role: str, content: list[Any], where: str) -> None:
    allowed = _USER_TYPES if role == "user" else ("text",)
    for index, part in enumerate(content):
        at = f"{where}.content[{index}]"
        if not isinstance(part, dict):
            raise invalid_request(f"Invalid type for '{at}': expected an object.", at, "invalid_type")
        kind = part.get("type")
        if kind not in allowed:
            supported = ", ".join(f"'{name}'" for name in allowed)
            raise invalid_request(
                f"Invalid value: '{kind}'. Supported values are: {supported}.", f"{at}.type", "invalid_value"
            )
        if kind == "text" and not isinstance(part.get("text"), str):
            raise invalid_request(
                f"Missing required parameter: '{at}.text'.", f"{at}.text", "missing_required_parameter"
            )
        if kind == "image_url":
            _check_image(part.get("image_url"), f"{at}.image_url")
        if kind == "file":
            _check_file(part.get("file"), f"{at}.file")


def _check_image(image: Any, at: str) -> None:
    if not isinstance(image, dict) or not isinstance(image.get("url"), str):
        raise _missing(f"{at}.url")
    url = image["url"]
    if not (url.startswith("https://") or url.startswith("http://") or url.startswith("data:image/")):
        raise invalid_request(
            f"Invalid '{at}.url': expected a URL or a base64 data URL of an image.", f"{at}.url", "invalid_value"
        )
    if image.get("detail", "auto") not in _DETAILS:
        raise invalid_request(
            f"Invalid value: '{image.get('detail')}'. Supported values are: 'low', 'high' and 'auto'.",
            f"{at}.detail",
            "invalid_value",
        )


def _check_file(file: Any, at: str) -> None:
    if not isinstance(file, dict) or not (
        isinstance(file.get("file_data"), str) or isinstance(file.get("file_id"), str)
    ):
        raise invalid_request(
            f"Missing required parameter: '{at}.file_data'.", f"{at}.file_data", "missing_required_parameter"
        )
    data = file.get("file_data")
    if data is not None and not (data.startswith("data:") and ";base64," in data):
        raise invalid_request(
            f"Invalid '{at}.file_data': expected a base64 data URL.", f"{at}.file_data", "invalid_value"
        )


def _missing(param: str) -> Exception:
    return invalid_request(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def attachments_of(content: Any) -> list[dict[str, Any]]:
    """The image and file parts of a message's content, as it was sent."""
    if not isinstance(content, list):
        return []
    return [part for part in content if isinstance(part, dict) and part.get("type") in ("image_url", "file")]
