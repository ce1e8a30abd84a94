"""How close is the token estimate the window and POST /responses/input_tokens use to a real tokenizer?

Counts texts of several kinds with chat.engine.tokens.estimate_tokens and with o200k_base, the
tokenizer of the GPT-4o, GPT-4.1 and o-series models (bpe-openai, which carries its vocabulary in
the package, so nothing is downloaded), plus the 3 tokens Chat Completions adds to a message. The
texts are this repository's own English docs and Python code, JSON bodies the tests send, and
Japanese, Chinese, German and emoji sentences written here.

    .venv/bin/python -m pip install -r requirements-bench.txt   # scripts/bench installs it too
    .venv/bin/python benchmarks/token_estimate.py

docs/openai-compatible.md quotes its table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import bpe_openai

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chat.engine.tokens import estimate_tokens  # noqa: E402

MESSAGE_FRAMING = 3  # OpenAI's documented per-message tokens of the chat format
CHUNK_CHARS = 2000  # texts are cut into messages of about this many characters


def chunks(text: str) -> list[str]:
    return [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS) if text[i : i + CHUNK_CHARS].strip()]


def corpora() -> dict[str, list[str]]:
    prose = "\n".join((ROOT / "docs" / name).read_text(encoding="utf-8") for name in ("storage.md", "deploy.md"))
    code = "\n".join(path.read_text(encoding="utf-8") for path in sorted((ROOT / "chat" / "engine").glob("*.py")))
    bodies = json.dumps(
        json.loads((ROOT / "tests" / "schemas" / "openai" / "openapi-subset.json").read_text())["components"][
            "schemas"
        ]["Response"]
    )
    japanese = "会話の履歴はテーブルストレージに保存され、各ターンは一つのトランザクションで書き込まれます。" * 40
    chinese = "每个对话都保存在表存储中，每一轮对话都在一个事务中写入，不会丢失也不会混淆。" * 40
    german = "Jede Unterhaltung wird im Tabellenspeicher gehalten; kein Gesprächszug geht verloren. " * 40
    emoji = "Thanks! 🎉🚀✨ Ready when you are 😀👍 " * 60
    return {
        "English prose (docs/storage.md, docs/deploy.md)": chunks(prose),
        "Python (chat/engine/*.py)": chunks(code),
        "JSON (OpenAI's Response schema)": chunks(bodies),
        "German": chunks(german),
        "Japanese": chunks(japanese),
        "Chinese": chunks(chinese),
        "emoji and English": chunks(emoji),
    }


def main() -> None:
    encoding = bpe_openai.get_encoding("o200k_base")
    print("| text | messages | estimate | o200k_base + framing | estimate / real |")
    print("| --- | --- | --- | --- | --- |")
    for name, messages in corpora().items():
        estimated = sum(estimate_tokens(text) for text in messages)
        real = sum(len(encoding.encode(text)) + MESSAGE_FRAMING for text in messages)
        print(f"| {name} | {len(messages)} | {estimated:,} | {real:,} | {estimated / real:.2f} |")


if __name__ == "__main__":
    main()
