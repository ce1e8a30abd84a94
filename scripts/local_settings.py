"""Print `export NAME=value` lines for the `Values` of local.settings.json not already set.

scripts/run evaluates them, so the same file configures `func start` and `scripts/run`.
"""

import json
import os
import shlex
import sys

with open(sys.argv[1], encoding="utf-8") as f:
    values = json.load(f).get("Values", {})
for name, value in values.items():
    if name.isidentifier() and name not in os.environ and isinstance(value, str):
        print(f"export {name}={shlex.quote(value)}")
