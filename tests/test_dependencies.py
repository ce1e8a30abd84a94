"""How the clients are built: options that cost nothing where they are not needed."""

from __future__ import annotations

import pytest

from chat.dependencies import storage_options


def test_storage_reads_proxy_settings_only_where_a_proxy_is_configured():
    # Told to, the SDK's session looks the proxy settings up in a thread on every request.
    assert storage_options({})["use_env_settings"] is False
    assert storage_options({"PATH": "/bin", "HOME": "/root"})["use_env_settings"] is False


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "ALL_PROXY", "no_proxy"])
def test_a_proxy_in_the_environment_is_used(name):
    options = storage_options({name: "http://proxy.example:3128"})
    assert options["use_env_settings"] is True
    # The rest of the options stay as they are.
    assert options["retry_total"] == 2
