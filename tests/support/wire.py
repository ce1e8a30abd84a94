"""Values several tests send or match: the principal header and its claim, a tool with the
stand-in directive that calls it, and the echo model's answer."""

from __future__ import annotations

import re

# The header Static Web Apps and App Service authentication send, and App Service's object ID claim.
PRINCIPAL = "x-ms-client-principal"
OBJECT_ID = "http://schemas.microsoft.com/identity/claims/objectidentifier"

# A function tool as a Responses request gives it, and a message that makes the stand-in call it.
GET_TIME = {
    "type": "function",
    "name": "get_time",
    "description": "The time in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ASK_TIME = '[[tool:get_time {"city": "Oslo"}]] What time is it?'

# The echo model's answer: how many earlier messages it was sent, and the new one.
ECHO = re.compile(r"Echo #(\d+): (.*)", re.DOTALL)
