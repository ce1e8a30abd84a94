"""Token usage of one answer, as the model reports it: shared by the model client and the store."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
