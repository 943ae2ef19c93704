"""``python -m export {fashion,text,housing,all} [--version auto|N] [--epochs E] [--models-dir models]
[--data-dir D] [--limit N] [--tflite-quantize]``, ``python -m export publish SOURCE --name NAME ...`` (a user's own model) and
``python -m export train-images DIR --name NAME ...`` (a classifier trained from a class-folder tree).

Errors (unknown model, missing or corrupt data, an existing version) print one line saying what to fix and
exit non-zero without a traceback; this is the one place export errors become exit codes.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from export.errors import ExportError, InvalidSource, UnknownModel

if TYPE_CHECKING:
    from export.foreign.contract import Declared

KNOWN = ("fashion", "text", "housing")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__.splitlines()[0])
    parser.add_argument(
        "model", help=f"one of {', '.join(KNOWN)}, or 'all' (or the commands publish, train-images)"
    )
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
    parser.add_argument(
        "--tflite-quantize",
        action="store_true",
        help="also write model.int8.tflite, int8 dynamic-range quantized and checked (model.tflite stays float)",
    )
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.limit is not None and args.limit < 10:
        parser.error("--limit must be at least 10")
    return args


def _publish_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export publish",
        description="Publish your own Keras (.keras, .h5) or SavedModel model as the next version of NAME.",
    )
    parser.add_argument("source", help="a .keras or .h5 file, or a SavedModel directory")
    _common(parser)
    parser.add_argument("--signature", default=None, help="the serving signature (default: serving_default)")
    parser.add_argument("--output", default=None, help="the output holding the scores or the value")
    parser.add_argument(
        "--samples", nargs="+", default=(), help="warm-up and check inputs: photos, .txt, .csv"
    )
    parser.add_argument("--eval", default=None, help="labelled samples: a class-folder directory or a .csv")
    parser.add_argument(
        "--tflite-quantize",
        action="store_true",
        help="also write model.int8.tflite, int8 dynamic-range quantized and checked (model.tflite stays float)",
    )
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    """Flags ``publish`` and ``train-images`` share: where the version goes and the contract's statements."""
    parser.add_argument("--name", required=True, help="the model's name in the model repository")
    parser.add_argument("--version", default="auto", help="'auto' (next free number, default) or a number")
    parser.add_argument("--models-dir", default="models", help="model repository root (default: models)")
    parser.add_argument("--labels", default=None, help="a file with one class label per line, index order")
    parser.add_argument("--input-kind", choices=("image", "text", "numeric"), default=None)
    parser.add_argument(
        "--input-range",
        nargs=2,
        type=float,
        metavar=("LO", "HI"),
        default=None,
        help="the values pixel intensities 0 and 255 map to (default: inferred, else 0 1)",
    )
    parser.add_argument(
        "--resize",
        choices=("stretch", "pad", "crop"),
        default=None,
        help="how the gateway fits a photo to the input (default: stretch)",
    )
    parser.add_argument(
        "--logits", action="store_true", help="the scores are logits: classify applies softmax"
    )
    parser.add_argument("--task", choices=("classification", "regression", "prediction"), default=None)
    parser.add_argument(
        "--register",
        metavar="GATEWAY_URL",
        default=None,
        help="then have the running stack behind this gateway serve it (admin token: $GATEWAY_ADMIN_TOKEN, "
        "else .run/admin-token; a model it serves already just picks up the new version)",
    )


def _images_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export train-images",
        description="Train an image classifier on a class-folder tree (DIR/<label>/<photo>) and publish it.",
    )
    parser.add_argument("directory", help="one sub-folder of photos per class")
    _common(parser)
    parser.add_argument("--size", type=int, default=64, help="the model's square input side (default 64)")
    parser.add_argument("--epochs", type=int, default=20, help="at most this many epochs (early stopping)")
    parser.add_argument("--patience", type=int, default=4, help="epochs without improvement before stopping")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--tensorboard", default=None, help="write TensorBoard logs into this folder")
    parser.add_argument(
        "--checkpoint", default=None, help="the best epoch's model file (default checkpoints/NAME.keras)"
    )
    parser.add_argument("--fine-tune", default=None, help="start from this .keras model (base frozen)")
    parser.add_argument("--unfreeze", type=int, default=0, help="then train its top N layers at a small LR")
    return parser


def _declared(args: argparse.Namespace) -> Declared:
    from export.foreign.contract import Declared

    labels = None
    if args.labels is not None:
        path = Path(args.labels)
        if not path.is_file():
            raise InvalidSource(path, "no such labels file")
        labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return Declared(
        input_kind=args.input_kind,
        input_range=tuple(args.input_range) if args.input_range else None,
        resize=args.resize,
        logits=args.logits,
        task=args.task,
        signature=getattr(args, "signature", None),
        output=getattr(args, "output", None),
        labels=labels,
    )


def _register(args: argparse.Namespace) -> None:
    """``--register``: add ``--models-dir/--name`` to the stack behind the gateway (export.register)."""
    from export.register import RegisterFailed, register

    token = os.environ.get("GATEWAY_ADMIN_TOKEN", "").strip()
    saved = Path(".run/admin-token")
    if not token and saved.is_file():
        token = saved.read_text(encoding="utf-8").strip()
    if not token:
        raise RegisterFailed(
            args.name, "no admin token: set GATEWAY_ADMIN_TOKEN (make run keeps it in .run/admin-token)"
        )
    outcome = register(args.register, token, args.name, Path(args.models_dir) / args.name)
    print(f"   {args.register}: {args.name} {outcome}")


def _run_publish(argv: Sequence[str]) -> None:
    args = _publish_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from export.foreign.build import Request, publish

    publish(
        Request(
            source=Path(args.source),
            name=args.name,
            models_dir=Path(args.models_dir),
            version=args.version,
            declared=_declared(args),
            samples=[Path(p) for p in args.samples],
            eval=Path(args.eval) if args.eval else None,
            tflite_quantize=args.tflite_quantize,
        )
    )
    if args.register:
        _register(args)


def _run_train_images(argv: Sequence[str]) -> None:
    parser = _images_parser()
    args = parser.parse_args(argv)
    if args.unfreeze and not args.fine_tune:
        parser.error("--unfreeze applies with --fine-tune")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from export.image_folder import Settings, train_and_publish

    train_and_publish(
        Path(args.directory),
        Settings(
            name=args.name,
            models_dir=Path(args.models_dir),
            version=args.version,
            size=args.size,
            epochs=args.epochs,
            patience=args.patience,
            batch_size=args.batch_size,
            tensorboard=Path(args.tensorboard) if args.tensorboard else None,
            fine_tune=Path(args.fine_tune) if args.fine_tune else None,
            unfreeze=args.unfreeze,
            checkpoint=Path(args.checkpoint) if args.checkpoint else None,
        ),
        _declared(args),
    )
    if args.register:
        _register(args)


COMMANDS = {"publish": _run_publish, "train-images": _run_train_images}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        try:
            COMMANDS[argv[0]](argv[1:])
        except ExportError as err:
            print(f"error: {err}", file=sys.stderr)
            return err.exit_code
        except KeyboardInterrupt:
            print("interrupted: nothing was published", file=sys.stderr)
            return 130
        except Exception as err:  # TensorFlow's own failures on a model we did not build: one line, no trace
            first = (str(err).strip().splitlines() or [""])[0]
            print(
                f"error: {argv[0]} failed, nothing was published: {type(err).__name__}: {first}",
                file=sys.stderr,
            )
            return 1
        return 0
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
                tflite_quantize=args.tflite_quantize,
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
