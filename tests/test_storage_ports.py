"""Each storage store implements the engine's port of the same name, method for method."""

from __future__ import annotations

import inspect

import pytest

from chat.engine import ports
from chat.storage import conversations, deletes, history, items, messages, quota, runs, turn_writes

PAIRS = [
    (ports.HistoryWindow, history.HistoryWindow),
    (ports.TurnWrites, turn_writes.TurnWrites),
    (ports.ItemReads, items.ItemReads),
    (ports.TurnDeletes, deletes.TurnDeletes),
    (ports.TurnStore, messages.TurnStore),
    (ports.ConversationIndex, conversations.ConversationIndex),
    (ports.TokenLedger, quota.TokenLedger),
    (ports.RunStore, runs.RunStore),
]


def methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


@pytest.mark.parametrize(("port", "store"), PAIRS, ids=[port.__name__ for port, _ in PAIRS])
def test_the_store_has_every_method_of_its_port_with_the_same_parameters(port, store):
    wanted, found = methods(port), methods(store)
    assert set(wanted) <= set(found)
    for name, signature in wanted.items():
        assert list(signature.parameters) == list(found[name].parameters), name


def test_the_narrow_ports_share_no_method():
    narrow = [ports.HistoryWindow, ports.TurnWrites, ports.ItemReads, ports.TurnDeletes]
    names = [name for port in narrow for name in methods(port)]
    assert len(names) == len(set(names))
