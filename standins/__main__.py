"""Run both stand-ins in the foreground, for local runs without a real model.

    python -m standins --host 127.0.0.1 --model-port 8401 --identity-port 8402

prints the environment variables that point the app at them, one ``NAME=value`` a line, then
serves until interrupted. Journals: ``GET {model}/_standin/requests``,
``GET {identity}/_standin/token-requests``, ``POST {model}/_standin/clear``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from . import environment, start_server
from .identity import TOKEN_PATH, IdentityStandIn
from .model import ModelStandIn


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m standins", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--model-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--identity-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--identity-header", help="the IDENTITY_HEADER secret (default: random)")
    parser.add_argument("--openai-api-key", help="the key of the /v1 route (default: random)")
    parser.add_argument("--deployment", default="chat")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="delay between streamed chunks")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    identity = IdentityStandIn(args.identity_header)
    model = ModelStandIn(
        identity,
        deployment=args.deployment,
        openai_api_key=args.openai_api_key,
        chunk_delay=args.chunk_delay_ms / 1000,
    )
    model_runner, model_port = await start_server(model.app(), args.host, args.model_port)
    identity_runner, identity_port = await start_server(identity.app(), args.host, args.identity_port)
    model_url = f"http://{args.host}:{model_port}"
    env = environment(
        identity_endpoint=f"http://{args.host}:{identity_port}{TOKEN_PATH}",
        identity_header=identity.identity_header,
        model_url=model_url,
        deployment=model.deployment,
    )
    for name, value in env.items():
        print(f"{name}={value}")
    sys.stdout.flush()
    print(f"OpenAI-compatible route: {model_url}/v1 with API key {model.openai_api_key}", file=sys.stderr)
    try:
        await asyncio.Event().wait()
    finally:
        await model_runner.cleanup()
        await identity_runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(_arguments(argv)))


if __name__ == "__main__":
    main()
