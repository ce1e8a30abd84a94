"""A conservative token estimate, with no download and no start-up cost.

Byte-level BPE tokenizers (every GPT model's) never produce more tokens than a text has UTF-8
bytes, and English prose averages about four bytes a token. We count one token per three bytes,
plus a few tokens of framing per message: an over-estimate for prose and code in English
(about a third too many), close for CJK text (three bytes a character, about one token each).
Text that tokenizes worse than that (long runs of emoji or random symbols) can exceed it; the
service then meets `context_length_exceeded`, shrinks the window and retries once.

Images count as OpenAI counts them, without opening the image: 85 tokens at `low` detail; at
`high` (and `auto`, which may pick high) the most an image can cost, 85 and 170 a 512-pixel tile
of the 768 x 2048 it is scaled into at most (8 tiles, 1,445 tokens). A file counts by its size,
one token per three of its decoded bytes, as text would: more than a PDF's extracted text costs.
An image behind an https URL is counted as an image of that detail; its own size is unknown.
"""

from __future__ import annotations

from collections.abc import Iterable

from chat.engine.items import FilePart, ImagePart, Item, attachments

BYTES_PER_TOKEN = 3
MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(text: str) -> int:
    return MESSAGE_OVERHEAD_TOKENS + -(-len(text.encode("utf-8", "surrogatepass")) // BYTES_PER_TOKEN)


LOW_DETAIL_IMAGE_TOKENS = 85
TILE_TOKENS = 170
MAX_TILES = 8  # 768 x 2048 in 512-pixel tiles
HIGH_DETAIL_IMAGE_TOKENS = LOW_DETAIL_IMAGE_TOKENS + TILE_TOKENS * MAX_TILES


def part_tokens(part: ImagePart | FilePart) -> int:
    if isinstance(part, ImagePart):
        return LOW_DETAIL_IMAGE_TOKENS if part.detail == "low" else HIGH_DETAIL_IMAGE_TOKENS
    return -(-part.size // BYTES_PER_TOKEN)


def attachment_tokens(items: Iterable[Item]) -> int:
    """The tokens of the images and files among `items` (messages and function call outputs), beside their text's."""
    return sum(part_tokens(part) for item in items for part in attachments(item))
