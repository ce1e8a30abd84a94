"""A conservative token estimate, with no download and no start-up cost.

Byte-level BPE tokenizers (every GPT model's) never produce more tokens than a text has UTF-8
bytes, and English prose averages about four bytes a token. We count one token per three bytes,
plus a few tokens of framing per message: an over-estimate for prose and code in English
(about a third too many), close for CJK text (three bytes a character, about one token each).
Text that tokenizes worse than that (long runs of emoji or random symbols) can exceed it; the
service then meets `context_length_exceeded`, shrinks the window and retries once.
"""

from __future__ import annotations

BYTES_PER_TOKEN = 3
MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(text: str) -> int:
    return MESSAGE_OVERHEAD_TOKENS + -(-len(text.encode("utf-8", "surrogatepass")) // BYTES_PER_TOKEN)
