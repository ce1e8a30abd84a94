"""One turn: place it (placing.py), read its window and reserve its tokens (reading.py), compact the
window first if the request asks and the prompt reached its threshold (compaction.py), ask the model
(asking.py), store the turn (commit.py), answer; a streamed answer is drained by streams.py.

The engine knows nothing of HTTP, of the Azure SDKs or of the model's wire format: a turn talks to
the protocols of ports.py and model.py and raises the errors of errors.py.
"""

from __future__ import annotations

from dataclasses import replace

from chat.engine.asking import Asking
from chat.engine.commit import TurnWriter
from chat.engine.compaction import Compacting, streamed_with_compaction, with_compaction
from chat.engine.history import History, ResponseRecord
from chat.engine.ids import minting_in
from chat.engine.items import all_stored_in
from chat.engine.placing import Placement
from chat.engine.ports import Tracer
from chat.engine.reading import Reading
from chat.engine.runs import Progress, Runs
from chat.engine.streams import BeforeStore, Drain, Streams
from chat.engine.turns import Answer, Place, StreamedAnswer, TurnInput, new_turn, replay_events, replayed


class Turns:
    """The turn use case: `reply` answers whole, `stream` as the model writes."""

    def __init__(
        self,
        *,
        placement: Placement,
        reading: Reading,
        asking: Asking,
        compacting: Compacting,
        writer: TurnWriter,
        streams: Streams,
        runs: Runs,
        tracer: Tracer,
    ) -> None:
        self._placement = placement
        self._reading = reading
        self._asking = asking
        self._compacting = compacting
        self._writer = writer
        self._streams = streams
        self._runs = runs
        self._tracer = tracer

    async def reply(self, owner: str, request: TurnInput) -> Answer:
        request, place = await self.placed(owner, request)
        span = self._tracer.turn(place.conversation.key, self._asking.model_name, streamed=False)
        try:
            with minting_in(place.conversation.key):
                answer = await self._reply(place, request)
        except BaseException as e:
            span.fail(e)
            raise
        span.succeed(finish_reason=answer.finish_reason, usage=answer.usage, replayed=answer.replayed)
        return answer

    async def stream(self, owner: str, request: TurnInput) -> StreamedAnswer:
        """Start a streamed turn. Errors before the model's first byte raise here; later ones are
        the stream's last event."""
        request, place = await self.placed(owner, request)
        return await self._stream(place, request)

    async def stream_at(
        self, place: Place, request: TurnInput, *, before_store: BeforeStore | None = None
    ) -> StreamedAnswer:
        """A streamed turn placed beforehand (a background response, placed when it was queued).
        `before_store` is awaited once the answer is whole, before its turn is stored: a ChatError
        it raises is the stream's last event, and nothing is stored."""
        request = await self._placement.resolved(place.conversation.owner, request)
        self._placement.check_inputs(request.inputs)
        self._placement.check_fits(place, request)
        return await self._stream(place, _stored_in(request, place), before_store)

    async def _stream(
        self, place: Place, request: TurnInput, before_store: BeforeStore | None = None
    ) -> StreamedAnswer:
        with minting_in(place.conversation.key):  # the stream's task inherits it
            return await self._streamed(place, request, before_store)

    async def _streamed(self, place: Place, request: TurnInput, before_store: BeforeStore | None) -> StreamedAnswer:
        conversation = place.conversation
        span = self._tracer.turn(conversation.key, self._asking.model_name, streamed=True)
        try:
            history, reservation = await self._reading.prepare(place, request)
            if history.replay is not None:
                replay = history.replay
                span.succeed(finish_reason=replay.finish_reason, usage=replay.usage, replayed=True)
                return StreamedAnswer(
                    conversation.id, replay_events(replay), replayed=True, response_id=replay.response_id
                )
            history, made, used = await self._compacting.before_turn(history, request, reservation)
            run = self._begin_run(place, request, history)
            try:
                history, events = await self._asking.stream(history, request, reservation)
                if made is not None:
                    events = streamed_with_compaction(events, made, used)
                if run is not None:
                    await self._runs.recorded(run)
            except BaseException:
                if run is not None:
                    await self._runs.end(run)
                raise
        except BaseException as e:
            span.fail(e)
            raise
        drain = Drain(place, request, history, reservation, span, run, before_store)
        drained = self._streams.start(drain, events)
        return StreamedAnswer(conversation.id, drained, response_id=place.response_id, stop=drain.stop)

    async def aclose(self) -> None:
        await self._streams.aclose()

    async def placed(self, owner: str, request: TurnInput) -> tuple[TurnInput, Place]:
        """The request with its references resolved, and where it goes; refused if it cannot fit."""
        request = await self._placement.resolved(owner, request)
        place = await self._placement.place(owner, request)
        self._placement.check_fits(place, request)
        return _stored_in(request, place), place

    async def _reply(self, place: Place, request: TurnInput) -> Answer:
        conversation = place.conversation
        history, reservation = await self._reading.prepare(place, request)
        if history.replay is not None:
            return replayed(conversation, history.replay)
        history, made, used = await self._compacting.before_turn(history, request, reservation)
        history, completion = await self._asking.complete(history, request, reservation)
        completion = with_compaction(completion, made, used)
        turn = new_turn(place, request, completion.outputs, completion.finish_reason, completion.usage)
        replay = await self._writer.store_turn(conversation, history, turn, reservation, store=request.store)
        if replay is not None:
            return replayed(conversation, replay)
        return Answer(
            conversation.id,
            completion.outputs,
            completion.finish_reason,
            completion.usage,
            response_id=place.response_id,
            created_at=turn.created_at,
        )

    def _begin_run(self, place: Place, request: TurnInput, history: History) -> Progress | None:
        """A stored response being streamed is readable in progress until its turn is stored."""
        if request.response is None or place.response_id is None or not request.store:
            return None
        record = ResponseRecord(place.response_id, request.response)
        return self._runs.begin(place.conversation, record, history.head.floor)


def _stored_in(request: TurnInput, place: Place) -> TurnInput:
    """The request with its inputs under IDs that name the conversation they are stored in."""
    return replace(request, inputs=all_stored_in(request.inputs, place.conversation.key))
