"""A keyless chat backend: conversations in Azure Table Storage, answers from Azure OpenAI."""
