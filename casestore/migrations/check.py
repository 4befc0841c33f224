"""CI gate: the models and the migrations describe the same schema (`alembic check`)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.util.exc import CommandError

from casestore.migrations import alembic_config, upgrade


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'check.db'}"
        upgrade(url)
        try:
            command.check(alembic_config(url))
        except CommandError as exc:
            print(f"models and migrations disagree: {exc}", file=sys.stderr)
            return 1
    print("alembic check: models and migrations agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
