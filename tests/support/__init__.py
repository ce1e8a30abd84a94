"""What the tests share: the local components they start and the clients and readers they use.

    ports.py          free loopback ports, waiting for a process to listen, stopping it
    azurite.py        Azurite (Table and Blob Storage) from node_modules, and the blobs a served app wrote
    servers.py        the app under uvicorn, its clean environment
    tls.py            a self-signed certificate for loopback HTTPS
    api.py            an HTTP client of both doors
    functions.py      function_app.py as the Functions worker indexes and calls it
    turns.py          turns as the AI Chat Protocol makes them, for tests of the store
    prompts.py        what the model stand-in was sent: a question's prompt, the turns' texts in it
    wire.py           values several tests send: the principal header, a tool and its directive
    page.py           the chat page's folder and its Static Web Apps configuration
    browser.py        Debian's Chromium under Playwright, and a tab of the page that keeps its errors
    fault_proxy.py    storage faults on the requests a test names; stale_proxy.py, stale reads
    loopback_only.py  a script run with loopback-only sockets (python -m tests.support.loopback_only)
    openapi_doc.py    answers checked against /api/openapi.json; openai_schema.py, against OpenAI's
    door.py           the OpenAI door driven over HTTP, each answer checked against OpenAI's description
    frameworks.py     the agent frameworks' scripts run loopback-only, and the checks of what they sent
    bicep/            a small Bicep reader of infra/ (values, reader)
    infra.py          infra/ parsed with it, and the lookups the infra tests make in it
    channel.py        a stand-in of a bot channel's service URL
    standin_clients.py  the stand-ins driven as the product does: identity environment, loopback-only
                        sockets, the keyless Azure OpenAI client; standin_tools.py, tools and turns

The stand-ins of the model and the managed identity endpoint are not here: scripts/run serves them
too, so they are the top-level package `standins`. The fakes of the engine's protocols, for its unit
tests, are tests/fakes. conftest.py holds only fixtures.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
