"""The composition root: the engine's use cases, wired once per worker from the settings, the store,
the model and the tracer (chat/dependencies.py hands it the adapters; tests hand it fakes).

    Engine.turns     a turn, JSON or streamed (chat/engine/turn.py: placing.py, reading.py, asking.py,
                     commit.py, streams.py)
    Engine.views     reads of conversations, items and responses (views.py)
    Engine.deletes   a conversation, an item, a response (deletes.py)
    Engine.writes    the OpenAI door's conversations and items added by hand (writes.py)
    Engine.compacting  a window summarised into a compaction item (compaction.py)
    Engine.input_tokens  a request's input counted as a turn's budget counts it (counting.py)
    Engine.background  background responses, with a queue (background.py; None without one)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chat.engine.asking import Asking
from chat.engine.background import Background
from chat.engine.commit import TurnWriter
from chat.engine.compaction import Compacting
from chat.engine.counting import InputTokens
from chat.engine.deletes import Deletes
from chat.engine.items import Usage
from chat.engine.model import Model
from chat.engine.placing import Placement
from chat.engine.ports import ConversationIndex, JobQueue, JobStore, TokenLedger, Tracer, TurnSpan, TurnStore
from chat.engine.quota import QuotaLedger
from chat.engine.reading import Reading
from chat.engine.runs import Runs
from chat.engine.streams import SHUTDOWN_GRACE_SECONDS, Streams
from chat.engine.tokens import estimate_tokens
from chat.engine.turn import Turns
from chat.engine.views import Views
from chat.engine.writes import ConversationWrites
from chat.settings import Settings


@dataclass(frozen=True)
class Policy:
    """What the settings say of a turn: its system prompt, the window, the caps and the quota."""

    system_prompt: str
    history_token_budget: int
    daily_token_quota: int = 0
    max_answer_tokens: int | None = None
    max_message_chars: int | None = None
    log_content: bool = False
    # How long a background run's claim holds without a write: more than a model call may take.
    run_lease_seconds: float = 180.0
    max_deliveries: int = 5  # host.json's maxDequeueCount: its last delivery fails the response (poison)

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            system_prompt=settings.system_prompt,
            history_token_budget=settings.history_token_budget,
            daily_token_quota=settings.daily_token_quota,
            max_answer_tokens=settings.max_answer_tokens,
            max_message_chars=settings.max_message_chars,
            log_content=settings.log_content,
            run_lease_seconds=max(180.0, 3 * settings.model_timeout_seconds),
        )


@dataclass(frozen=True)
class Engine:
    turns: Turns
    views: Views
    deletes: Deletes
    writes: ConversationWrites
    compacting: Compacting
    input_tokens: InputTokens
    background: Background | None = None

    async def aclose(self) -> None:
        """Let the answers still streaming finish and be stored, for their grace period."""
        await self.turns.aclose()


def compose(
    store: TurnStore,
    conversations: ConversationIndex,
    token_ledger: TokenLedger,
    model: Model,
    policy: Policy,
    *,
    tracer: Tracer | None = None,
    runs: Runs | None = None,
    jobs: tuple[JobStore, JobQueue] | None = None,
    estimate: Callable[[str], int] = estimate_tokens,
    shutdown_grace_seconds: float = SHUTDOWN_GRACE_SECONDS,
) -> Engine:
    runs = runs or Runs()
    ledger = QuotaLedger(
        token_ledger, daily_quota=policy.daily_token_quota, answer_cap=policy.max_answer_tokens, estimate=estimate
    )
    placement = Placement(store, store, max_message_chars=policy.max_message_chars)
    writer = TurnWriter(store, store, conversations, ledger, log_content=policy.log_content)
    streams = Streams(writer, ledger, runs, shutdown_grace_seconds=shutdown_grace_seconds)
    asking = Asking(
        model, ledger, system_prompt=policy.system_prompt, max_answer_tokens=policy.max_answer_tokens, estimate=estimate
    )
    reading = Reading(store, store, ledger, asking, history_token_budget=policy.history_token_budget, estimate=estimate)
    compacting = Compacting(model, ledger, placement=placement, reading=reading, asking=asking, writer=writer)
    turns = Turns(
        placement=placement,
        reading=reading,
        asking=asking,
        compacting=compacting,
        writer=writer,
        streams=streams,
        runs=runs,
        tracer=tracer or _NoTracer(),
    )
    background = None
    if jobs is not None:
        background = Background(
            turns, *jobs, store, lease_seconds=policy.run_lease_seconds, max_deliveries=policy.max_deliveries
        )
    return Engine(
        turns=turns,
        background=background,
        views=Views(store, store, conversations, runs),
        deletes=Deletes(store, store, conversations, jobs[0] if jobs is not None else None),
        writes=ConversationWrites(store, store, conversations, placement=placement, writer=writer),
        compacting=compacting,
        input_tokens=InputTokens(placement, reading, asking),
    )


class _NoSpan:
    def succeed(self, *, finish_reason: str | None, usage: Usage | None, replayed: bool = False) -> None:
        pass

    def fail(self, error: BaseException) -> None:
        pass


class _NoTracer:
    def turn(self, conversation_key: str, model: str, *, streamed: bool) -> TurnSpan:
        return _NoSpan()
