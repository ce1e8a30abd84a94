"""Background responses in the messages table (chat.engine.ports.JobStore): each in a partition of
its own, `j{response ID}`, apart from every conversation's.

    job                 the run's row (chat.engine.jobs.Job): `owner`, `conv`, `cont_conv` and
                        `cont_num` (the turn it continues), `status`, `lease` (epoch seconds),
                        `events` (how many are stored), `err_code`, `err_msg`; the door's record
                        of the response in `r00`...; the request in `q00`..., or, when it does not
                        fit beside the record, in the blob named by `qblob`
    e{00000000}         event N of the run, as the door streamed it, in `c00`... (or the blob `blob`)

The run's events and its row change in one transaction under the row's ETag, so a run cancelled
meanwhile (the row moved on) stores nothing more, and a reader that finds the row finished has
every event it will ever have. The rows outlive the run: a response's events can be read again
until its conversation's owner deletes the response's turn (the job row then no longer leads
anywhere: reads of a completed job read the stored response).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.data.tables import UpdateMode

from chat.engine.errors import PayloadTooLarge
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
            name = f"jobs/{job.response_id}"
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
        )
        return job, str(row.metadata["etag"])

    async def update(self, job: Job, etag: str, events: Sequence[tuple[int, str]] = ()) -> str:
        client = await self._table.ready()
        partition = job_partition(job.response_id)
        rows = [await self._event_entity(partition, number, data) for number, data in events]
        batches = _batches(rows)
        for batch in batches[:-1]:
            with storage_errors():
                await client.submit_transaction([("upsert", row, {"mode": UpdateMode.REPLACE}) for row in batch])
        entity = _job_entity(job)  # merged: the record and the request written at create stay
        last = batches[-1] if batches else []
        operations: list[Any] = [("upsert", row, {"mode": UpdateMode.REPLACE}) for row in last]
        operations.append(("update", entity, {"mode": UpdateMode.MERGE, **if_unchanged(etag)}))
        with storage_errors():
            try:
                if len(operations) == 1:
                    result = await client.update_entity(entity, mode=UpdateMode.MERGE, **if_unchanged(etag))
                else:
                    result = (await client.submit_transaction(operations))[-1]
            except HttpResponseError as e:
                if is_clash(e):
                    raise JobClash(job.response_id) from None
                raise
        return str(result["etag"])

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
