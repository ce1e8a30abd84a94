"""The chat page's folder, web/, and its Static Web Apps configuration, as the page's tests read them."""

from __future__ import annotations

import json

from tests.support import ROOT

WEB = ROOT / "web"
CONFIG = json.loads((WEB / "staticwebapp.config.json").read_text(encoding="utf-8"))
