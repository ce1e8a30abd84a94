"""A user message's image and file parts (`input_image`, `input_file`), as OpenAI's Responses API
takes them: an image by https URL or data: URL, a file by base64 data URL. What needs a Files API
(`file_id`, `file_url`) is refused: this server keeps no files apart from the messages they are in."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from chat.engine.items import MAX_ATTACHMENT_BYTES, Detail, FilePart, ImagePart
from chat.web.openai.requests.strict import Refused, Strict, is_none
from chat.web.openai.requests.values import UTF8

# The media types of the images the model reads (OpenAI's: PNG, JPEG, WEBP, non-animated GIF).
IMAGE_MEDIA_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
MAX_URL_CHARS = 8_192  # an https image URL
MAX_FILENAME_CHARS = 255
# A data URL of the largest part: its media type and base64 (four characters for three bytes).
MAX_DATA_URL_CHARS = 256 + -(-MAX_ATTACHMENT_BYTES // 3) * 4
_DATA_URL = re.compile(r"data:([a-z0-9.+-]+/[a-z0-9.+-]+);base64,(.*)", re.DOTALL | re.IGNORECASE)

DataUrl = Annotated[str, StringConstraints(max_length=MAX_DATA_URL_CHARS)]
ImageUrl = Annotated[str, StringConstraints(min_length=1, max_length=MAX_DATA_URL_CHARS)]
Filename = Annotated[str, StringConstraints(min_length=1, max_length=MAX_FILENAME_CHARS), UTF8]


def _checked_data_url(url: str, field: str, media_types: tuple[str, ...] | None) -> None:
    """A base64 data URL of a media type among `media_types` (any, if None) and at most
    MAX_ATTACHMENT_BYTES decoded; else an error naming `field`."""
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise PydanticCustomError(
            "invalid_value", "expected a base64 data URL, data:<media type>;base64,<data>", {"field": field}
        )
    media_type, data = match[1].lower(), match[2]
    if media_types is not None and media_type not in media_types:
        raise PydanticCustomError(
            "invalid_value",
            "the media type {media_type} is not one of {supported}",
            {"field": field, "media_type": repr(media_type[:40]), "supported": ", ".join(media_types)},
        )
    try:
        decoded = len(base64.b64decode(data, validate=True)) if data else 0
    except binascii.Error:
        raise PydanticCustomError("invalid_value", "the data is not valid base64", {"field": field}) from None
    if decoded == 0:
        raise PydanticCustomError("invalid_value", "the data URL holds no data", {"field": field})
    if decoded > MAX_ATTACHMENT_BYTES:
        raise PydanticCustomError(
            "invalid_value",
            "it holds {size} bytes; the limit is {limit}",
            {"field": field, "size": f"{decoded:,}", "limit": f"{MAX_ATTACHMENT_BYTES:,}"},
        )


def _is_https_url(url: str) -> bool:
    """An https URL with a host: the scheme in any case, as URLs allow; no spaces or control characters."""
    parts = urlsplit(url)
    return parts.scheme.lower() == "https" and bool(parts.hostname) and url.isprintable() and " " not in url


class InputImage(Strict):
    refused: ClassVar[Refused] = {"file_id": is_none}

    type: Literal["input_image"]
    image_url: ImageUrl
    detail: Detail = "auto"

    @model_validator(mode="after")
    def _url_is_served(self) -> InputImage:
        if self.image_url.startswith("data:"):
            _checked_data_url(self.image_url, "image_url", IMAGE_MEDIA_TYPES)
        elif not _is_https_url(self.image_url) or len(self.image_url) > MAX_URL_CHARS:
            raise PydanticCustomError(
                "invalid_value",
                "expected an https URL of at most {limit} characters, or a base64 data URL",
                {"field": "image_url", "limit": f"{MAX_URL_CHARS:,}"},
            )
        return self

    def part(self) -> ImagePart:
        return ImagePart(self.image_url, self.detail)


class OutputImage(InputImage):
    """An image in a function call's output: as in a message, but its `detail` may be null (auto),
    as OpenAI's InputImageContentParamAutoParam lets it be."""

    detail: Detail | None = "auto"  # type: ignore[assignment]  # wider than a message's: null is auto

    def part(self) -> ImagePart:
        return ImagePart(self.image_url, self.detail or "auto")


class InputFile(Strict):
    refused: ClassVar[Refused] = {"file_id": is_none, "file_url": is_none}

    type: Literal["input_file"]
    file_data: DataUrl
    filename: Filename

    @model_validator(mode="after")
    def _data_is_served(self) -> InputFile:
        _checked_data_url(self.file_data, "file_data", None)
        return self

    def part(self) -> FilePart:
        return FilePart(self.file_data, self.filename)
