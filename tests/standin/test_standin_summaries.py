"""The model stand-in's answer to a summarising request, through the real openai client: a summary
that keeps every user line of the transcript (and the summaries it holds), so that a test can
check a fact of an early turn after compaction."""

from __future__ import annotations

import asyncio

from chat.engine.compaction import SUMMARY_REQUEST, transcript
from chat.engine.items import compaction, message
from standins import StandIns
from standins.completion import SUMMARY_REQUEST as STANDIN_SUMMARY_REQUEST
from tests.support.standin_clients import azure_openai


def _ask(standins: StandIns, text: str) -> str:
    async def scenario() -> str:
        async with azure_openai(standins) as client:
            completion = await client.chat.completions.create(
                model=standins.deployment,
                messages=[{"role": "system", "content": "Summarise."}, {"role": "user", "content": text}],
            )
            return completion.choices[0].message.content or ""

    return asyncio.run(scenario())


def test_the_app_and_the_stand_in_agree_on_the_summarising_request() -> None:
    assert SUMMARY_REQUEST.startswith(STANDIN_SUMMARY_REQUEST)


def test_a_summary_keeps_every_user_line_and_the_summaries_before_it(standins: StandIns) -> None:
    items = [
        compaction("Summary (1 answers): user: My locker code is 7391."),
        message("user", "I moved to Oslo."),
        message("assistant", "Noted."),
        message("user", "I like tea."),
    ]
    summary = _ask(standins, SUMMARY_REQUEST + transcript(items))
    assert summary.startswith("Summary (1 answers): ")
    assert "My locker code is 7391." in summary and "I moved to Oslo." in summary and "I like tea." in summary
    assert "Noted." not in summary


def test_another_request_is_still_echoed(standins: StandIns) -> None:
    assert _ask(standins, "Summarise this for me") == "Echo #0: Summarise this for me"
