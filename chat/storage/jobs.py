"""Background responses in the messages table (chat.engine.ports.JobStore): each in a partition of
its own, `j{response ID}`, apart from every conversation's.

    job                 the run's row (chat.engine.jobs.Job): `owner`, `conv`, `cont_conv` and
                        `cont_num` (the turn it continues), `status`, `lease` (epoch seconds),
                        `events` (how many are stored), `err_code`, `err_msg`; the door's record
                        of the response in `r00`...; the request in `q00`..., or, when it does not
                        fit beside the record, in the blob named by `qblob`
    e{00000000}         event N of the run, as the door streamed it, in `c00`... (or the blob `blob`)

The run's events and its row change in transactions under the row's ETag, so a run cancelled
meanwhile (the row moved on) or deleted (the row is gone) stores nothing more, and a reader that
finds the row finished has every event it will ever have. The rows outlive the run, until the
response or its conversation is deleted: the job's row goes first, so no run writes after it,
then the request's blob, then the events (each one's blob before its row). The jobs of a
conversation are found by their partitions: a response's ID begins with its conversation's key,
so `j{resp_}{key}...` is one range of PartitionKeys holding only those jobs' rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from chat.engine.errors import PayloadTooLarge
from chat.engine.history import Conversation
from chat.engine.ids import response_id_prefix
from chat.engine.items import TurnRef
from chat.engine.jobs import Job
from chat.engine.ports import JobClash
from chat.storage.blobs import TurnBlobs
from chat.storage.limits import PARTS_PER_ROW, split_text
from chat.storage.tables import Table, get_entity_or_none, if_unchanged, is_clash, range_rows, storage_errors

JOB_ROW = "job"
EVENT_PREFIX = "e"
# Events a transaction holds beside the job's row: well under 100 entities, and, each event at
# most a row, under 4 MiB with rows of ordinary events (a few hundred bytes).
EVENTS_PER_WRITE = 50
WRITE_CHARS = 1_000_000


def job_partition(response_id: str) -> str:
    return "j" + response_id


def request_blob(response_id: str) -> str:
    return f"jobs/{response_id}"


def event_row_key(number: int) -> str:
    return f"{EVENT_PREFIX}{number:08d}"


class JobStore:
    """The rows of background responses and of their events."""

    def __init__(self, table: Table, blobs: TurnBlobs | None) -> None:
        self._table = table
        self._blobs = blobs

    async def create(self, job: Job) -> None:
        entity = _job_entity(job)
        record = split_text(job.record)
        payload = split_text(job.payload)
        entity.update(_parts("r", record))
        if len(record) + len(payload) <= PARTS_PER_ROW:
            entity.update(_parts("q", payload))
        elif self._blobs is not None:
            name = request_blob(job.response_id)
            await self._blobs.put(name, job.payload.encode())
            entity["qblob"] = name
        else:
            raise PayloadTooLarge(
                "The request is too large to queue: this deployment has no Blob Storage for it.",
                code="input_too_large",
            )
        client = await self._table.ready()
        with storage_errors():
            await client.create_entity(entity)

    async def read(self, response_id: str) -> tuple[Job, str] | None:
        client = await self._table.ready()
        row = await get_entity_or_none(client, job_partition(response_id), JOB_ROW)
        if row is None:
            return None
        payload = _joined("q", row)
        if "qblob" in row and self._blobs is not None:
            payload = (await self._blobs.get(row["qblob"])).decode()
        continues = None
        if row.get("cont_conv") is not None:
            continues = TurnRef(row["cont_conv"], int(row["cont_num"]))
        job = Job(
            response_id=response_id,
            owner=row["owner"],
            conversation_id=row["conv"],
            record=_joined("r", row),
            payload=payload,
            status=row["status"],
            continues=continues,
            lease_until=float(row.get("lease", 0.0)),
            error_code=row.get("err_code"),
            error_message=row.get("err_msg"),
            events=int(row.get("events", 0)),
            storing=bool(row.get("storing", False)),
        )
        return job, str(row.metadata["etag"])

    async def update(self, job: Job, etag: str, events: Sequence[tuple[int, str]] = ()) -> str:
        client = await self._table.ready()
        partition = job_partition(job.response_id)
        rows = [await self._event_entity(partition, number, data) for number, data in events]
        entity = _job_entity(job)  # merged: the record and the request written at create stay
        # Every write is conditional on the row, so none lands once it moved on or is gone.
        for batch in _batches(rows) or [[]]:
            operations: list[Any] = [("upsert", row, {"mode": UpdateMode.REPLACE}) for row in batch]
            operations.append(("update", entity, {"mode": UpdateMode.MERGE, **if_unchanged(etag)}))
            with storage_errors():
                try:
                    if len(operations) == 1:
                        result = await client.update_entity(entity, mode=UpdateMode.MERGE, **if_unchanged(etag))
                    else:
                        result = (await client.submit_transaction(operations))[-1]
                except HttpResponseError as e:
                    if is_clash(e):
                        await self._forget_blobs(rows[rows.index(batch[0]) :] if batch else [])
                        raise JobClash(job.response_id) from None
                    raise
            etag = str(result["etag"])
        return etag

    async def delete(self, response_id: str) -> None:
        client = await self._table.ready()
        partition = job_partition(response_id)
        with storage_errors(), suppress(ResourceNotFoundError):
            await client.delete_entity(partition, JOB_ROW)
        if self._blobs is not None:
            await self._blobs.delete(request_blob(response_id))
        batch: list[tuple[str, dict[str, str]]] = []
        async for row in range_rows(client, partition, "", "~", first_page=1000, select=["RowKey", "blob"]):
            if row.get("blob") is not None and self._blobs is not None:
                await self._blobs.delete(row["blob"])
            batch.append(("delete", {"PartitionKey": partition, "RowKey": row["RowKey"]}))
            if len(batch) == 100:
                await _submit_deletes(client, batch)
                batch = []
        if batch:
            await _submit_deletes(client, batch)

    async def delete_placed_in(self, conversation: Conversation) -> None:
        client = await self._table.ready()
        start = job_partition(response_id_prefix(conversation.key))
        found: list[str] = []
        with storage_errors():
            async for row in client.query_entities(
                "PartitionKey ge @start and PartitionKey lt @end",
                parameters={"start": start, "end": start + "~"},
                select=["PartitionKey"],
                results_per_page=1000,
            ):
                if not found or found[-1] != row["PartitionKey"]:
                    found.append(row["PartitionKey"])
        for partition in found:
            await self.delete(partition[1:])

    async def events(self, response_id: str, after: int) -> list[tuple[int, str]]:
        client = await self._table.ready()
        found: list[tuple[int, str]] = []
        start = event_row_key(max(after + 1, 0))
        async for row in range_rows(client, job_partition(response_id), start, EVENT_PREFIX + "~", first_page=100):
            number = int(row["RowKey"][len(EVENT_PREFIX) :])
            data = _joined("c", row)
            if "blob" in row and self._blobs is not None:
                data = (await self._blobs.get(row["blob"])).decode()
            found.append((number, data))
        return found

    async def _forget_blobs(self, rows: Sequence[dict[str, Any]]) -> None:
        """The blobs of event rows a refused write would have named: nothing names them."""
        for row in rows:
            if "blob" in row and self._blobs is not None:
                await self._blobs.forget(row["blob"])

    async def _event_entity(self, partition: str, number: int, data: str) -> dict[str, Any]:
        entity: dict[str, Any] = {"PartitionKey": partition, "RowKey": event_row_key(number)}
        parts = split_text(data)
        if len(parts) <= PARTS_PER_ROW:
            entity.update(_parts("c", parts))
        elif self._blobs is not None:
            name = f"jobs/{partition[1:]}/{number:08d}"
            await self._blobs.put(name, data.encode())
            entity["blob"] = name
        else:
            raise PayloadTooLarge("An event of this response is too large to store.", code="input_too_large")
        return entity


def _job_entity(job: Job) -> dict[str, Any]:
    return {
        "PartitionKey": job_partition(job.response_id),
        "RowKey": JOB_ROW,
        "owner": job.owner,
        "conv": job.conversation_id,
        "cont_conv": job.continues.conversation_id if job.continues else None,
        "cont_num": job.continues.number if job.continues else None,
        "status": job.status,
        "lease": float(job.lease_until),
        "events": job.events,
        "storing": job.storing,
        "err_code": job.error_code,
        "err_msg": job.error_message,
    }


def _parts(prefix: str, parts: Sequence[str]) -> dict[str, str]:
    return {f"{prefix}{i:02d}": part for i, part in enumerate(parts)}


def _joined(prefix: str, row: Mapping[str, Any]) -> str:
    return "".join(row[f"{prefix}{i:02d}"] for i in range(PARTS_PER_ROW) if f"{prefix}{i:02d}" in row)


def _batches(rows: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    batches: list[list[dict[str, Any]]] = []
    size = 0
    for row in rows:
        chars = sum(len(value) for value in row.values() if isinstance(value, str))
        if not batches or size + chars > WRITE_CHARS or len(batches[-1]) >= EVENTS_PER_WRITE:
            batches.append([])
            size = 0
        batches[-1].append(row)
        size += chars
    return batches


async def _submit_deletes(client: Any, batch: list[tuple[str, dict[str, str]]]) -> None:
    with storage_errors():
        try:
            await client.submit_transaction(batch)
        except TableTransactionError as e:
            if not is_clash(e):
                raise
            # A concurrent delete removed some rows first: delete the rest one by one.
            for _, entity in batch:
                await client.delete_entity(entity["PartitionKey"], entity["RowKey"])
