"""The `sluicegate` command.

```
sluicegate serve  [--config FILE] [--host H] [--port P] [--workers N] [--runtime-threads N] [--loop L]
sluicegate mock   [--host H] [--port P] [--workers N]
sluicegate keys new [--name NAME] [--workspace W]
sluicegate keys hash KEY
sluicegate config [--config FILE]      print the effective settings (no secrets) and exit
```

Every `serve` flag has a variable twin: `--port` ↔ `SLUICEGATE_SERVER__PORT`, and the file itself
↔ `SLUICEGATE_CONFIG`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluicegate.config import ConfigError, ServerSettings, Settings, load_settings
from sluicegate.control import cli as control_cli
from sluicegate.control.crypto import MasterKeyError
from sluicegate.secrets import generate_key, hash_key

if TYPE_CHECKING:
    from sluicegate.control.bootstrap import Bootstrapped
    from sluicegate.control.settings import ControlSettings

_SERVER_FLAGS = ("host", "port", "workers", "runtime_threads", "loop")


class _Parser(argparse.ArgumentParser):
    """Never repeats an unrecognized argument: it may be a secret or an admin token typed where
    neither is taken (both are read from the environment, stdin or a file)."""

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:
            self.error(f"{len(extra)} unrecognized argument(s), not repeated (secrets and tokens are never arguments)")
        return parsed


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sluicegate", description="An LLM gateway that enforces policy in-line.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the gateway")
    serve.add_argument("--config", help="a TOML or YAML file (SLUICEGATE_CONFIG)")
    serve.add_argument("--host", help="bind address (SLUICEGATE_SERVER__HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (SLUICEGATE_SERVER__PORT, default 8080)")
    serve.add_argument("--workers", type=int, help="worker processes (SLUICEGATE_SERVER__WORKERS, default 1)")
    serve.add_argument("--runtime-threads", type=int, help="threads per worker (SLUICEGATE_SERVER__RUNTIME_THREADS)")
    serve.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], help="event loop (SLUICEGATE_SERVER__LOOP)")

    mock = sub.add_parser("mock", help="serve the mock provider (OpenAI and Anthropic formats)")
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=9090)
    mock.add_argument("--workers", type=int, default=1)

    keys = sub.add_parser("keys", help="gateway keys").add_subparsers(dest="keys_command", required=True)
    new = keys.add_parser("new", help="make a new gateway key and print its config entry")
    new.add_argument("--name", default="default")
    new.add_argument("--workspace", default="default")
    hashed = keys.add_parser("hash", help="print the stored form (sha256) of a key")
    hashed.add_argument("key")

    config = sub.add_parser("config", help="print the effective settings and exit")
    config.add_argument("--config", help="a TOML or YAML file (SLUICEGATE_CONFIG)")
    control_cli.register(sub)
    return parser


def _prepare_serve(args: argparse.Namespace) -> tuple[Settings, str | None]:
    """Put the config path and flags into the environment the workers read, then validate once."""
    if args.config:
        os.environ["SLUICEGATE_CONFIG"] = str(Path(args.config).resolve())
    for flag in _SERVER_FLAGS:
        value = getattr(args, flag)
        if value is not None:
            os.environ[f"SLUICEGATE_SERVER__{flag.upper()}"] = str(value)
    settings = load_settings()
    dev_key = None
    if not settings.keys and not settings.control.enabled:
        # No key configured: make one for this run, so the gateway is never open to anyone.
        dev_key = generate_key()
        os.environ["SLUICEGATE_KEYS"] = json.dumps([{"name": "dev", "sha256": hash_key(dev_key)}])
        settings = load_settings()
    return settings, dev_key


def _greeting(server: ServerSettings, key: str | None, note: str | None = None) -> str:
    reachable = "127.0.0.1" if server.host in ("0.0.0.0", "::", "") else server.host
    base = f"http://{reachable}:{server.port}"
    shown = key or "<your gateway key>"
    lines = [f"sluicegate listening on {server.host}:{server.port}"]
    if note:
        lines.append(note)
    lines += [
        "try:",
        f"  curl -s {base}/v1/chat/completions -H 'Authorization: Bearer {shown}' \\",
        "    -H 'Content-Type: application/json' \\",
        '    -d \'{"model": "mock-gpt", "messages": [{"role": "user", "content": "Hello"}]}\'',
    ]
    return "\n".join(lines)


def _prepared(control: ControlSettings) -> Bootstrapped | None:
    """The control plane's `prepare` (migrate or check the schema, bootstrap); a schema that is not
    current stops the start with exit status 1 and the reason."""
    from sluicegate.control.migrations import MigrationError
    from sluicegate.control.plane import prepare

    try:
        return prepare(control)
    except MigrationError as exc:
        print(f"sluicegate: the control plane's database is not ready: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            settings, dev_key = _prepare_serve(args)
            note = f"no keys configured: this run accepts the gateway key {dev_key}" if dev_key else None
            if settings.control.enabled:
                first_start = _prepared(settings.control)
                if first_start is not None:
                    print("\n".join(first_start.lines()), flush=True)
                    dev_key = first_start.key
                else:
                    note = "gateway keys live in the control plane: `sluicegate admin key --help` makes more"
            print(_greeting(settings.server, dev_key, note), flush=True)
            from sluicegate.server import serve

            serve(settings.server)
        elif args.command == "mock":
            from sluicegate.server import serve

            serve(
                ServerSettings(host=args.host, port=args.port, workers=args.workers), "sluicegate.mock.app:create_app"
            )
        elif args.command == "keys":
            if args.keys_command == "new":
                key = generate_key()
                print(f"key (shown once): {key}")
                print(f'[[keys]]\nname = "{args.name}"\nworkspace = "{args.workspace}"\nsha256 = "{hash_key(key)}"')
            else:
                print(hash_key(args.key))
        elif args.command == "config":
            if args.config:
                os.environ["SLUICEGATE_CONFIG"] = str(Path(args.config).resolve())
            settings = load_settings()
            # JSON mode: every `Secret` setting prints as *****, a URL's password too.
            print(json.dumps(settings.model_dump(mode="json"), indent=2))
        elif args.command in ("admin", "audit"):
            control_cli.run(args)
    except ConfigError as exc:
        print(f"sluicegate: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except MasterKeyError as exc:
        print(f"sluicegate: master key error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
