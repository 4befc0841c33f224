"""Run the real gateway or the bare endpoint under one set of uvicorn settings.

    python -m bench.serve_app real|bare --port P [--host 127.0.0.1]

`real` builds the app exactly as `ventanilla serve` does (settings from the environment, the
deployment TOML, `gateway.app.create_app`); `bare` is `bench.bare.app`. Both get the same
`uvicorn.Config`: one worker (one process), access log off, log level warning, and the HTTP
parser and event loop picked the way uvicorn's "auto" would pick them, named explicitly so the
benchmark report can say which ones ran.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import Any


def uvicorn_options() -> dict[str, Any]:
    """The uvicorn.Config options shared by every benchmark target."""
    return {
        "http": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "access_log": False,
        "log_level": "warning",
        "lifespan": "on",
    }


def build_app(target: str, host: str, port: int) -> Any:
    if target == "bare":
        from bench.bare import app

        return app
    from casestore.config import load_config
    from gateway.app import create_app
    from gateway.settings import load_settings

    settings = load_settings(host=host, port=port)
    return create_app(settings, load_config(env=settings.env))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.serve_app", description=__doc__)
    p.add_argument("target", choices=["real", "bare"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)

    import uvicorn

    app = build_app(args.target, args.host, args.port)
    config = uvicorn.Config(app, host=args.host, port=args.port, **uvicorn_options())
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
