"""``python -m export {fashion,text,housing,all} [--version auto|N] [--epochs E] [--models-dir models]
[--data-dir D] [--limit N]``

Errors (unknown model, missing or corrupt data, an existing version) print one line saying what to fix and
exit non-zero without a traceback; this is the one place export errors become exit codes.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from export.errors import ExportError, UnknownModel

KNOWN = ("fashion", "text", "housing")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__.splitlines()[0])
    parser.add_argument("model", help=f"one of {', '.join(KNOWN)}, or 'all'")
    parser.add_argument("--version", default="auto", help="'auto' (next free number, default) or a number")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: per model)")
    parser.add_argument("--models-dir", default="models", help="model repository root (default: models)")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder with fashion-mnist/, housing/, sms-spam/ (default: $DATA_DIR)",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="train on a fixed slice of N rows (smoke runs)"
    )
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.limit is not None and args.limit < 10:
        parser.error("--limit must be at least 10")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = list(KNOWN) if args.model == "all" else [args.model]
    try:
        if args.model != "all" and args.model not in KNOWN:
            raise UnknownModel(args.model, KNOWN)
        if args.model == "all" and args.version != "auto":
            raise ExportError("--version N applies to one model; use --version auto with 'all'")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from export.api import export_model  # TensorFlow loads only once the arguments are valid

        for name in names:
            export_model(
                name,
                args.models_dir,
                version=args.version,
                epochs=args.epochs,
                limit=args.limit,
                data_dir=args.data_dir,
            )
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted: nothing was published for the model in progress", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
