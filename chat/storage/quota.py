"""Each owner's token count for a UTC day, for the daily quota (CHAT_DAILY_TOKEN_QUOTA).

One row per owner and day (`q{YYYYMMDD}`) in the owner's partition of the conversations table,
so the count holds across instances; concurrent additions are serialized by its ETag.
"""

from __future__ import annotations

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from chat.engine.errors import StorageUnavailable
from chat.storage import keys
from chat.storage.tables import Table, storage_errors

ATTEMPTS = 20


class TokenCounts:
    def __init__(self, table: Table) -> None:
        self._table = table

    async def tokens_used(self, owner: str, day: str) -> int:
        await self._table.ready()
        with storage_errors():
            try:
                entity = await self._table.client.get_entity(keys.owner_partition(owner), keys.usage_row_key(day))
            except ResourceNotFoundError:
                return 0
        return int(entity["tokens"])

    async def add_tokens(self, owner: str, day: str, tokens: int) -> None:
        """Add to the owner's count for the day; concurrent additions are serialized by ETag."""
        await self._table.ready()
        partition = keys.owner_partition(owner)
        row_key = keys.usage_row_key(day)
        for _ in range(ATTEMPTS):
            with storage_errors():
                try:
                    entity = await self._table.client.get_entity(partition, row_key)
                except ResourceNotFoundError:
                    try:
                        await self._table.client.create_entity(
                            {"PartitionKey": partition, "RowKey": row_key, "tokens": tokens}
                        )
                        return
                    except ResourceExistsError:
                        continue
                try:
                    await self._table.client.update_entity(
                        {"PartitionKey": partition, "RowKey": row_key, "tokens": int(entity["tokens"]) + tokens},
                        mode=UpdateMode.REPLACE,
                        etag=entity.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                    return
                except ResourceModifiedError:
                    continue
        raise StorageUnavailable("The token count is too busy to update; try again.")
