"""Table Storage plumbing shared by the stores: tables made on first use, the SDK's errors turned
into ours, range reads in pages, writes conditional on what was read, and the opaque cursors of
paged reads. `MadeOnFirstUse` and `create_unless_made` serve the blob container and the queue too."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from azure.core import MatchConditions
from azure.core.async_paging import AsyncPageIterator
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestTimeoutError,
    ServiceResponseTimeoutError,
)
from azure.data.tables import TableEntity, UpdateMode
from azure.data.tables.aio import TableClient

from chat.engine.errors import ChatError, InvalidRequest, StorageUnavailable, TableMissing

log = logging.getLogger(__name__)

MAX_PAGE_ROWS = 1000  # the most rows Azure returns in one page
# What a write that lost to another writer fails with: the entity it would create exists, the
# ETag it was conditioned on changed, or an entity it would change or delete is gone.
CLASH_CODES = frozenset({"EntityAlreadyExists", "UpdateConditionNotSatisfied", "ResourceNotFound"})

# An operation of a write, as submit_transaction takes it: ("create", entity), ("delete", entity),
# or ("update" | "upsert" | "delete", entity, keyword arguments).
Operation = tuple[str, Mapping[str, Any]] | tuple[str, Mapping[str, Any], Mapping[str, Any]]
State = TypeVar("State")


class MadeOnFirstUse:
    """A table, container or queue made on first use, once per worker, by `make`; `forget` (the
    service said it is gone: deleted, or an emulator restarted) makes the next use make it again."""

    def __init__(self, make: Callable[[], Awaitable[None]]) -> None:
        self._make = make
        self._ready = False
        self._lock = asyncio.Lock()

    @property
    def ready(self) -> bool:
        return self._ready

    async def ensure(self) -> None:
        if self._ready:
            return
        async with self._lock:
            if not self._ready:
                await self._make()
                self._ready = True

    def forget(self) -> None:
        self._ready = False


async def create_unless_made(create: Callable[[], Awaitable[object]], what: str) -> None:
    """Create a container or a queue; one that exists is no error, and so is being refused the
    create (403) by a principal granted data roles alone: then the deployment made it."""
    with storage_errors():
        try:
            await create()
        except ResourceExistsError:
            pass
        except HttpResponseError as e:
            if e.status_code != 403:
                raise
            log.warning("not allowed to create %s; using it as the deployment made it", what)


class Table:
    """A table client whose table is created on first use, once per worker, unless the app may
    not create tables (403): then the deployment made it. If the table goes away (deleted, or
    an emulator restarted), `forget` makes the next use create it again."""

    def __init__(self, client: TableClient) -> None:
        self.client = client
        self._made = MadeOnFirstUse(self._create)

    @property
    def name(self) -> str:
        return self.client.table_name

    def forget(self) -> None:
        """The service said the table does not exist: the next use creates it again."""
        if self._made.ready:
            log.warning("table %s does not exist; it is created again on its next use", self.name)
        self._made.forget()

    async def ping(self) -> None:
        """One cheap read, to tell whether the table answers."""
        client = await self.ready()
        with storage_errors():
            async for _ in client.query_entities("PartitionKey eq 'health'", results_per_page=1):
                break

    async def ready(self) -> TableClient:
        await self._made.ensure()
        return self.client

    async def _create(self) -> None:
        with storage_errors():
            try:
                await self.client.create_table()
            except ResourceExistsError as e:
                if _error_code(e) == "TableBeingDeleted":
                    # Azure takes a while to delete a table, and refuses its name until it is done.
                    raise TableMissing(self.name, being_deleted=True) from e
            except ClientAuthenticationError:
                raise  # the credential itself is refused: every real call would fail the same way
            except HttpResponseError as e:
                if e.status_code != 403:
                    raise
                # A principal granted data roles on the table alone (as the deployment grants
                # them) may be refused Create Table though the table exists; if it does not,
                # the reads and writes say so.
                log.warning(
                    "not allowed to create table %s (%s); using it as the deployment made it",
                    self.client.table_name,
                    getattr(e, "error_code", None),
                )

    async def close(self) -> None:
        await self.client.close()


async def range_rows(
    client: TableClient,
    partition: str,
    start: str,
    end: str,
    *,
    first_page: int,
    select: list[str] | None = None,
    second_page: int | None = None,
) -> AsyncIterator[TableEntity]:
    """The rows of `partition` whose RowKeys are in [start, end), in RowKey order.

    The first page asks for `first_page` rows and each further page for twice as many (up to
    the 1,000 Azure returns at most): a reader that stops early fetched one small page, and one
    that reads on takes a few round trips, not one per `first_page` rows, reading at most about
    twice the rows it uses. `second_page` sets the size the second page starts the doubling from
    (a first page of the head alone, then pages as a whole read asks). Storage errors become
    StorageUnavailable.
    """
    page_rows = min(first_page, MAX_PAGE_ROWS)
    continuation = None
    while True:
        with storage_errors():
            pages = cast(
                AsyncPageIterator[TableEntity],
                client.query_entities(
                    "PartitionKey eq @pk and RowKey ge @start and RowKey lt @end",
                    parameters={"pk": partition, "start": start, "end": end},
                    results_per_page=page_rows,
                    select=select,
                ).by_page(continuation),
            )
            page = await anext(pages, None)
            entities = [entity async for entity in page] if page is not None else []
            continuation = pages.continuation_token
        for entity in entities:
            yield entity
        if not continuation:
            return
        page_rows = min(second_page or 2 * page_rows, MAX_PAGE_ROWS)
        second_page = None


async def get_entity_or_none(client: TableClient, partition: str, row: str) -> TableEntity | None:
    """One entity, with its ETag in `metadata`, or None when there is none."""
    with storage_errors():
        try:
            return await client.get_entity(partition, row)
        except ResourceNotFoundError:
            return None


def if_unchanged(etag: str | None) -> dict[str, Any]:
    """The keyword arguments of a write conditional on the ETag read (every entity read has one,
    in its `metadata`): it clashes (is_clash) if another writer changed the entity since."""
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified}


def replace_or_create(entity: Mapping[str, Any], etag: str | None) -> Operation:
    """Replace `entity` if it still has the ETag it was read with, or create it if none was read
    (`etag` None): either way the write fails if another writer changed or created it first."""
    if etag is None:
        return ("create", entity)
    return ("update", entity, {"mode": UpdateMode.REPLACE, **if_unchanged(etag)})


async def change_under_etag(
    client: TableClient,
    read: Callable[[], Awaitable[State]],
    change: Callable[[State], Sequence[Operation]],
    *,
    attempts: int,
    busy: ChatError,
    seen: State | None = None,
    written: Callable[[Sequence[Operation], Sequence[Any]], None] | None = None,
) -> State:
    """Read, change, and write back only if nothing changed in between; retry on a clash.

    `read` returns the state a write depends on: an entity with its ETag (`get_entity_or_none`),
    or several. `change` turns it into the write: operations in one partition, each conditional
    on what was read (`replace_or_create`, or a create that fails if another writer made the
    row), or none when there is nothing to write. One operation is sent as a single request,
    several as one transaction, all or nothing. When the write loses to another writer (the
    row it creates exists, an ETag changed, a row it changes is gone, or in a transaction one
    it deletes), the state is read again and changed again, up to `attempts` writes in all;
    `change` may so see several states, and must build its write from the one it is given (a
    single delete of a row already gone succeeds, as the SDK's delete_entity does).

    `seen` is a state already read, to spare the first read (if it is stale, the write clashes
    and the state is read). `written` is told the operations that succeeded and what the service
    answered for each (a dict with its new `etag`, or None). Returns the state the write (or
    the decision to write nothing) was made from. Raises `busy` when every attempt clashed, and
    StorageUnavailable when storage fails otherwise.
    """
    state = seen if seen is not None else await _read(read)
    for attempt in range(attempts):
        if attempt:
            state = await _read(read)
        operations = change(state)
        if not operations:
            return state
        with storage_errors():
            try:
                results = await _submit(client, operations)
            except HttpResponseError as e:
                if not is_clash(e):
                    raise
            else:
                if written is not None:
                    written(operations, results)
                return state
    raise busy


async def _read(read: Callable[[], Awaitable[State]]) -> State:
    with storage_errors():
        return await read()


async def _submit(client: TableClient, operations: Sequence[Operation]) -> list[Any]:
    """Send the operations; what the service answered for each (its metadata, with the new `etag`)."""
    if len(operations) > 1:
        return list(await client.submit_transaction(operations))
    [(kind, entity, *options)] = operations
    keywords = dict(options[0]) if options else {}
    if kind == "create":
        return [await client.create_entity(entity, **keywords)]
    if kind == "update":
        return [await client.update_entity(entity, **keywords)]
    if kind == "upsert":
        return [await client.upsert_entity(entity, **keywords)]
    if kind == "delete":
        await client.delete_entity(entity, **keywords)
        return [None]
    raise ValueError(f"unknown operation {kind!r}")


def is_clash(error: BaseException) -> bool:
    """Whether a write failed because another writer changed what it depends on first: the row it
    would create exists, the ETag it was conditioned on changed, or a row it would change or delete
    is gone. The one test of "changed under me" every store uses, alone or in a transaction.

    By the service's error code, not the SDK's class: a create into a missing table is a
    ResourceNotFoundError too, and retrying it cannot help."""
    return isinstance(error, HttpResponseError) and _error_code(error) in CLASH_CODES


@contextmanager
def clash_ignored() -> Iterator[None]:
    """A write for which losing to another writer (is_clash) is as good as succeeding: a create of a
    row another write made, a conditional delete of a row another write changed or removed."""
    try:
        yield
    except HttpResponseError as e:
        if not is_clash(e):
            raise


def _error_code(error: HttpResponseError) -> str | None:
    code = getattr(error, "error_code", None)
    if code is None and error.response is not None:
        # The SDK leaves it unset on some single-entity errors (a create that finds the row).
        code = error.response.headers.get("x-ms-error-code")  # type: ignore[attr-defined]  # every response has headers
    return None if code is None else str(getattr(code, "value", code))  # the SDK's codes are str enums


def _table_of(error: HttpResponseError) -> str:
    """The table a failed request named: its URL's last path segment, before any `(keys)`.

    A transaction's error is its failed part's, whose URL names the table too."""
    request: Any = error.response.request if error.response is not None else None
    if request is None:
        return "?"
    path = urllib.parse.urlsplit(str(request.url)).path
    return urllib.parse.unquote(path.split("(", 1)[0].rstrip("/").rsplit("/", 1)[-1]) or "?"


def encode_cursor(row_key: str) -> str:
    return base64.urlsafe_b64encode(row_key.encode("ascii")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, is_page_start: Callable[[str], bool]) -> str:
    """The RowKey a cursor names, if it is one where a page of this kind may start."""
    try:
        row_key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest("The cursor is not valid.", code="invalid_cursor") from None
    if not is_page_start(row_key):
        raise InvalidRequest("The cursor is not valid.", code="invalid_cursor")
    return row_key


@contextmanager
def storage_errors() -> Iterator[None]:
    """Azure SDK errors become StorageUnavailable; callers never see azure.core errors."""
    try:
        yield
    except ClientAuthenticationError as e:
        log.error("storage refused our credential: %s", e.message)
        raise StorageUnavailable("Storage refused the app's credential; check its role assignments.") from e
    except HttpResponseError as e:
        if _error_code(e) == "TableNotFound":
            # The transport has told the table: the next use creates it again.
            table = _table_of(e)
            log.error("storage table %s does not exist", table)
            raise TableMissing(table) from e
        log.error("storage error %s: %s", e.status_code, e.message)
        raise StorageUnavailable("Storage failed; try again.") from e
    except (ServiceRequestTimeoutError, ServiceResponseTimeoutError) as e:
        log.error("storage timed out: %s", e)
        raise StorageUnavailable("Storage did not answer in time; try again.") from e
    except AzureError as e:
        log.error("storage unreachable: %s", e)
        raise StorageUnavailable("Storage is unreachable; try again.") from e
