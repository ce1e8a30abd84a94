"""Stand-ins for the unit tests: fakes of the engine's protocols (store.py, engine.py: no I/O, no SDK),
and the OpenAI door's wire layer served on its own for the real openai SDK (openai_door.py)."""
