"""A developer's tool for the control plane's revisions (the running gateway never needs it):

```
python -m sluicegate.control.migrations new "add widgets" [--empty] [--database-url URL]
python -m sluicegate.control.migrations check [--database-url URL]
```

Both build a scratch database (a SQLite file in a temporary directory, or the empty database that
`--database-url` names, such as a scratch PostgreSQL one; a database that already has tables is
refused) and bring it to the newest revision. `new` then writes `versions/NNNN_<slug>.py` with what
Alembic's autogenerate finds between that database and `models.py`, numbered after the newest
revision and formatted with ruff when ruff is installed; read and edit what it wrote (autogenerate
sees tables, columns, types, nullability, indexes, unique and foreign keys; not renames, not data).
It refuses when there is nothing to generate, unless `--empty` (a data migration). `check` lists
the differences and exits 1 when `models.py` and the revisions disagree.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from sluicegate.control.migrations import HERE, config, differences, migrate
from sluicegate.control.settings import ControlSettings
from sluicegate.control.store import ControlStore


def main(argv: list[str] | None = None) -> int:
    """Run the tool; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m sluicegate.control.migrations", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="autogenerate the next revision from models.py")
    new.add_argument("message", help="what the revision does, in a few words (it names the file)")
    new.add_argument("--empty", action="store_true", help="write a revision even when nothing differs (data only)")
    check = sub.add_parser("check", help="exit 1 when models.py and the revisions disagree")
    for p in (new, check):
        p.add_argument("--database-url", help="an empty scratch database (default: SQLite in a temporary directory)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'scratch.db'}"
        return asyncio.run(_run(args, url))


async def _run(args: argparse.Namespace, url: str) -> int:
    store = ControlStore(ControlSettings(enabled=True, database_url=url))
    try:
        async with store.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        if tables:
            print(
                f"{_shown(url)} has tables ({', '.join(sorted(tables))}): name an empty scratch database",
                file=sys.stderr,
            )
            return 2
        await migrate(store.engine)
        async with store.engine.connect() as conn:
            diffs = await conn.run_sync(differences)
            if args.command == "check":
                for diff in diffs:
                    print(diff)
                print(f"models.py and the revisions {'disagree' if diffs else 'agree'}", file=sys.stderr)
                return 1 if diffs else 0
            if not diffs and not args.empty:
                print(
                    "models.py and the revisions agree: nothing to generate (--empty writes one anyway)",
                    file=sys.stderr,
                )
                return 1
            path = await conn.run_sync(_revision, args.message)
    finally:
        await store.close()
    _format(path)
    print(path)
    return 0


def _revision(conn: Connection, message: str) -> Path:
    cfg = config()
    head = ScriptDirectory.from_config(cfg).get_current_head()
    cfg.attributes["connection"] = conn
    script: Any = command.revision(  # reads only: inside the transaction `differences` began
        cfg,
        message=message,
        autogenerate=True,
        rev_id=f"{int(head or 0) + 1:04d}",
        version_path=str(HERE / "versions"),
    )
    return Path(script.path)


def _format(path: Path) -> None:
    if importlib.util.find_spec("ruff") is None:
        print("ruff is not installed: format the new revision yourself", file=sys.stderr)
        return
    subprocess.run([sys.executable, "-m", "ruff", "check", "--fix", "--quiet", str(path)], check=False)
    subprocess.run([sys.executable, "-m", "ruff", "format", "--quiet", str(path)], check=False)


def _shown(url: str) -> str:
    return url.split("@")[-1]  # never print a password


if __name__ == "__main__":
    raise SystemExit(main())
