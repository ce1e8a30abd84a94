"""What the model stand-in was sent: the messages of the request that asked a given question, and
the user's and assistant's texts among them."""

from __future__ import annotations

from standins.protocol import text_of


def prompt_of(standins, text: str) -> list[dict]:
    """The messages the model was sent with the request whose last user message's text was `text`
    (a string content, or the text parts of an array of parts)."""
    for entry in reversed(standins.requests()):
        messages = entry["body"]["messages"]
        users = [m for m in messages if m["role"] == "user"]
        if users and text_of(users[-1]["content"]) == text:
            return messages
    raise AssertionError(f"the model was never asked {text!r}")


def contents(messages: list[dict]) -> list[str]:
    return [m["content"] for m in messages if m["role"] in ("user", "assistant") and m.get("content")]
