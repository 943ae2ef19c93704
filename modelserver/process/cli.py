"""``python -m modelserver``: ``tensorflow_model_server``'s command line.

Flags are written as TF Serving writes them: ``--name=value``; booleans also bare (``--enable_batching``) or
``--name=true|false`` (also 1/0). Unknown flags, malformed values and positional arguments fail at start
with a message naming the problem (exit status 2; a bad config file at start exits 1). ``--version``
prints the version; ``--help`` lists the flags.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from modelserver import __version__
from modelserver.errors import ConfigError
from modelserver.process.options import ServerOptions
from modelserver.process.startup_files import read_startup_files
from modelserver.process.supervisor import WorkerContext, supervise
from modelserver.process.tfs_flags import TFS_FLAGS, refusal

__all__ = ["main", "parse_flags"]

_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


def _usage() -> str:
    lines = [
        "usage: python -m modelserver [--flag=value ...]",
        "",
        "tensorflow_model_server's flags (docs/flags.md):",
    ]
    fields = ServerOptions.model_fields
    for name, flag in TFS_FLAGS.items():
        if flag.status == "refused":
            accepts = " (accepts " + ", ".join(a or "''" for a in flag.accepts or ("nothing",)) + ")"
            lines.append(f"  --{name}: refused at start{accepts}: {flag.note}")
        elif name == "version":
            lines.append("  --version: implemented: prints the version")
        else:
            how = "implemented" if flag.status == "implemented" else "implemented differently"
            lines.append(
                f"  --{name}={fields[name].default!r}: {how}" + (f": {flag.note}" if flag.note else "")
            )
    lines += ["", "this server's own flags:"]
    lines += [f"  --{name}={info.default!r}" for name, info in fields.items() if name not in TFS_FLAGS]
    return "\n".join(lines)


def parse_flags(argv: Sequence[str]) -> ServerOptions:
    """Flags -> validated ServerOptions; ConfigError names the offending flag."""
    fields = ServerOptions.model_fields
    values: dict[str, Any] = {}
    for arg in argv:
        if not arg.startswith("-") or arg in ("-", "--"):
            raise ConfigError(f"unexpected argument {arg!r}: flags are written --name=value")
        name, has_value, raw = arg.lstrip("-").partition("=")
        if name in TFS_FLAGS and TFS_FLAGS[name].status == "refused":
            message = refusal(name, raw if has_value else "true")
            if message is not None:
                raise ConfigError(message)
            continue  # a value that asks for what this server does anyway
        info = fields.get(name)
        if info is None:
            raise ConfigError(f"unknown flag --{name} (see --help for the flags)")
        if info.annotation is bool:
            if not has_value or raw.lower() in _TRUE:
                values[name] = True
            elif raw.lower() in _FALSE:
                values[name] = False
            else:
                raise ConfigError(f"--{name}={raw}: expected true or false")
        elif not has_value:
            raise ConfigError(f"--{name} needs a value: --{name}=<value>")
        else:
            values[name] = raw
    try:
        options = ServerOptions(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'.'.join(str(p) for p in err['loc'])}={err.get('input')!r}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid flag value: {problems}") from None
    options.validate_combination()
    return options


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--version" in args:
        print(f"TensorFlow ModelServer (tfserve-stack modelserver) {__version__}")
        return 0
    if "--help" in args or "-h" in args:
        print(_usage())
        return 0
    worker = WorkerContext.from_env()  # set by the supervisor for its workers only
    who = "" if worker is None else f" worker {worker.index}"
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s %(levelname)s{who} %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        options = parse_flags(args)
    except ConfigError as exc:
        return _failed(exc, 2, worker)
    try:
        files = read_startup_files(options)  # before TensorFlow loads: bad files fail in a blink
        if worker is None and options.workers > 1:
            return supervise(options, args)
    except ConfigError as exc:
        return _failed(exc, 1, worker)
    from modelserver.process.server import run  # TensorFlow loads here

    try:
        return run(options, files, worker)
    except ConfigError as exc:
        logging.getLogger("modelserver").error("%s", exc)
        return _failed(exc, 1, worker)


def _failed(exc: ConfigError, status: int, worker: WorkerContext | None) -> int:
    print(f"modelserver: {exc}", file=sys.stderr)
    if worker is not None:  # the supervisor repeats it as its last line
        with contextlib.suppress(OSError):
            worker.error_path.write_text(str(exc), encoding="utf-8")
    return status
