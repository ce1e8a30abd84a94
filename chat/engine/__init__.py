"""The turn engine: a turn and the types it speaks, with no SDK, no web framework and no other layer.

What it needs from storage and from the model it declares as typing.Protocols; the adapters in
chat/storage and chat/upstream implement them, and chat/dependencies.py wires them in.
"""
