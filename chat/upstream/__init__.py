"""The model adapter: Chat Completions through the openai SDK."""
