"""Fakes of the engine's protocols for its unit tests: no I/O, no SDK."""
