"""Conversation history in Azure Table Storage: the engine's TurnStore, one store per job on the
messages table, put together.

One partition per (owner, conversation): every row of a turn's items, and the conversation's head
row, are written by one entity group transaction, so a turn is stored whole or not at all.

    message_table.py  what every job shares: the client, the blobs, the windows kept, the head
    history.py        the window a turn reads, and chains of responses (HistoryWindow)
    turn_writes.py    turns appended, conversations created, metadata, the owner's item index
    items.py          pages of items, one item, an owner's item, stored responses (ItemReads)
    deletes.py        a conversation's floor raised and its rows removed, an item, a response
    codec.py          turns and items as rows and back; windows.py the windows a worker keeps

The key layout is in keys.py, the size limits in limits.py, and the whole protocol in
docs/storage.md. The owner's list of conversations is in conversations.py, the daily token
counts in quota.py.
"""

from __future__ import annotations

from chat.storage.deletes import TurnDeletes
from chat.storage.history import HistoryWindow
from chat.storage.items import ItemReads
from chat.storage.turn_writes import TurnWrites


class TurnStore(HistoryWindow, TurnWrites, ItemReads, TurnDeletes):
    """Every job on the messages table in one object, over one client, one blob container and one
    cache of windows: `TurnStore(table, blobs=..., window_cache_tokens=...)`."""
