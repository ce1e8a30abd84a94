"""The turn engine: its use cases and the types they speak, with no SDK, no web framework and no
other layer.

A turn (turn.py), reads (views.py), deletes (deletes.py) and the OpenAI door's writes (writes.py),
each a small type; chat/bootstrap.py composes them. What they need from storage and from the model
they declare as typing.Protocols; the adapters in chat/storage and chat/upstream implement them,
and chat/dependencies.py hands them in.
"""
