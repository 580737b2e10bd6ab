"""The `pmf` command line: one sub-command per module in `apps/`, each exposing `add_parser(subparsers)`.

Sub-command modules are imported lazily by name so `pmf --help` stays fast and a broken optional
dependency of one command never takes the others down.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# (module, one-line help). Each module defines `add_parser(subparsers) -> argparse.ArgumentParser`
# and sets `func=` on it via `set_defaults`; `func(args) -> int` is the exit code.
COMMANDS: list[str] = [
    "apps.cmd_train",
    "apps.cmd_sample",
    "apps.cmd_edit",
    "apps.cmd_stylize",
    "apps.cmd_interpolate",
    "apps.cmd_pack_dataset",
    "apps.cmd_bench_edit",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pmf",
        description="pixel MeanFlow: one-step generation, editing and frame interpolation.",
    )
    parser.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                        help="network precision of sample / edit / stylize (bf16: bf16 autocast of the "
                             "matmuls; default: core.precision.DEFAULT_PRECISION, fp32). Training has "
                             "its own --bf16")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:  # command not shipped in this build
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    previous = None
    if args.precision is not None:
        from core.precision import set_default_precision

        previous = set_default_precision(args.precision)  # samplers and pmf_edit tasks resolve None to it
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, FloatingPointError) as err:
        # Bad input (or a checkpoint whose computation blew up): a clear one-line message, no traceback.
        print(f"pmf {args.command}: error: {err}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:  # in-process callers (tests) get their default back
            set_default_precision(previous)


if __name__ == "__main__":
    sys.exit(main())
