"""The `pmf` command line: one sub-command per module in `apps/`, each exposing `add_parser(subparsers)`.

Sub-command modules are imported lazily by name: a call imports only its own command's module
(`COMMAND_MODULES`; `pmf edit` does not pay for the training stack's imports), `pmf` and `pmf --help`
list the commands from `COMMAND_HELP` without importing any, and a broken optional dependency of one
command never takes the others down.

Errors: this file is the one place that turns exceptions into exit codes. Bad input (a library
ValueError/TypeError, a missing or unwritable file, a non-finite training loss, a bad flag) prints ONE
line, `pmf COMMAND: error: ...`, and exits 2; SIGINT/SIGTERM/SIGHUP stop the command through the same
clean-up paths as an error (partial outputs removed, ffmpeg children closed) and exit 128 + signal;
anything else is a bug: one line naming it, exit 1 (PMF_TRACEBACK=1 shows the traceback).
"""
from __future__ import annotations

import argparse
import importlib
import math
import os
import signal
import sys
import warnings

# Every command module. Each defines `add_parser(subparsers) -> argparse.ArgumentParser` and sets
# `func=` on it via `set_defaults`; `func(args) -> int` is the exit code.
COMMANDS: list[str] = [
    "apps.cmd_train",
    "apps.cmd_sample",
    "apps.cmd_edit",
    "apps.cmd_stylize",
    "apps.cmd_interpolate",
    "apps.cmd_pack_dataset",
    "apps.cmd_export",
    "apps.cmd_bench_edit",
]


# The module that defines each command, so that a call imports only its own (tests/test_cli.py checks
# this against what the modules register).
COMMAND_MODULES: dict[str, str] = {
    "train": "apps.cmd_train", "sample": "apps.cmd_sample", "invert": "apps.cmd_edit", "edit": "apps.cmd_edit",
    "inpaint": "apps.cmd_edit", "stylize": "apps.cmd_stylize", "interpolate": "apps.cmd_interpolate",
    "interpolate-video": "apps.cmd_interpolate", "pack-dataset": "apps.cmd_pack_dataset",
    "export": "apps.cmd_export", "bench-edit": "apps.cmd_bench_edit",
}


# The one-line help of each command as its module registers it (tests/test_cli.py checks the two
# agree), so that the overview (`pmf`, `pmf --help`, an unknown command) imports no command module.
COMMAND_HELP: dict[str, str] = {
    "train": "train or resume a model (pMF or flow matching)",
    "sample": "generate images (one step by default) with a trained model",
    "invert": "image -> the noise that regenerates it (implicit jumps)",
    "edit": "change an image's class, keeping its shape and style",
    "inpaint": "refill a masked region; other pixels stay exactly as they are",
    "stylize": "style transfer from a reference image or a model class",
    "interpolate": "make the frame between two images (optical flow)",
    "interpolate-video": "raise a video's frame rate or make slow motion",
    "pack-dataset": "pack an image folder / file list into uint8 shards (no decoding while training)",
    "export": "export a run's latest checkpoint (one EMA) as a model folder",
    "bench-edit": "edit-quality benchmark: run an editor over a manifest, score outputs",
}


def command_of(argv: list[str]) -> str | None:
    """The command named in ``argv`` (the first word after the global options), or None."""
    i = 0
    while i < len(argv):
        if argv[i] == "--precision":  # the one global option with a separate value
            i += 2
        elif argv[i].startswith("-"):
            i += 1
        else:
            return argv[i]
    return None


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2), like every other error of `pmf`."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def finite_float(text: str) -> float:
    """argparse type of every float flag: NaN and infinities are refused where they are typed."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


finite_float.__name__ = "finite number"  # argparse names the type in its message


def _finite_floats(parser: argparse.ArgumentParser) -> None:
    """Make every `type=float` flag of `parser` (and its sub-commands) refuse NaN and infinities."""
    for action in parser._actions:
        if action.type is float:
            action.type = finite_float
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _finite_floats(sub)


def build_parser(command: str | None = None, *, overview: bool = False) -> argparse.ArgumentParser:
    """The `pmf` parser: with a known ``command``, only the module that defines it is imported (and
    registers its commands); otherwise every command module. ``overview``: the commands as names and
    one-line helps only (`COMMAND_HELP`), no module imported: enough to list them or refuse a name."""
    parser = _Parser(
        prog="pmf",
        description="pixel MeanFlow: one-step generation, editing and frame interpolation.",
    )
    precision_help = ("network precision: the weights are loaded in it (bf16 also autocasts fp32 networks). "
                      "Default auto: bf16 weights for networks of 5M+ parameters (the official checkpoints) on a "
                      "CPU with native bf16 (AVX512-BF16/AMX), 1.8-2.8x faster at pMF-B/16 by CPU generation; fp32 otherwise "
                      "(the bundled models, CUDA)")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default=None,
                        help=f"{precision_help}. For sample / invert / edit / inpaint / stylize, which also take "
                             "it after the command name. Training has its own --bf16")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if overview:
        for name, text in COMMAND_HELP.items():
            sub.add_parser(name, help=text)  # no func: main prints the overview
        return parser
    for name in [COMMAND_MODULES[command]] if command in COMMAND_MODULES else COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:  # command not shipped in this build
                continue
            raise
        module.add_parser(sub)
    for name in PRECISION_COMMANDS & set(sub.choices):
        # Also after the command name (`pmf edit --precision fp32 ...`); SUPPRESS keeps the global
        # flag's value when the command's own is not given.
        sub.choices[name].add_argument("--precision", choices=PRECISION_CHOICES, default=argparse.SUPPRESS,
                                          help=precision_help)
    _finite_floats(parser)
    return parser


PRECISION_CHOICES = ("auto", "fp32", "bf16")
PRECISION_COMMANDS = {"sample", "invert", "edit", "inpaint", "stylize"}


class Stopped(BaseException):
    """Raised by the SIGTERM/SIGHUP handler so `finally`/`except BaseException` clean-ups run."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum: int, _frame) -> None:
    raise Stopped(signum)


def error_line(err: BaseException) -> str:
    """One line for an exception: OSErrors as "what: file", others by their message."""
    if isinstance(err, OSError) and err.strerror:
        files = " -> ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
        text = f"{err.strerror}: {files}" if files else err.strerror
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())  # one line, whatever the message held


def _one_line_warnings(prog: str) -> None:
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"{prog}: warning: {error_line(Warning(str(message)))}", file=sys.stderr)

    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = command_of(argv)
    parser = build_parser(command, overview=command not in COMMAND_MODULES)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    prog = f"pmf {args.command}"
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None}
    previous = None
    if args.precision not in (None, "auto"):
        from core.precision import set_default_precision

        previous = set_default_precision(args.precision)  # samplers and pmf_edit tasks resolve None to it
    try:
        for s in old:
            signal.signal(s, _on_signal)
    except ValueError:  # not the main thread (an embedding program): leave its handlers alone
        old = {}
    saved_showwarning = warnings.showwarning
    _one_line_warnings(prog)
    try:
        if getattr(args, "device", None) is not None and not getattr(args, "dry_run", False):
            from core import checks

            checks.device(args.device, "--device")
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Stopped as err:
        print(f"{prog}: stopped by {err}", file=sys.stderr)
        return 128 + err.signum
    except BrokenPipeError as err:
        if _stdout_gone():  # `pmf ... | head`: the reader has what it wanted; stop quietly, as Unix tools do
            return 128 + 13  # SIGPIPE's status
        print(f"{prog}: error: {error_line(err)}", file=sys.stderr)  # another pipe (an ffmpeg process) broke
        return 2
    except (ValueError, TypeError, OSError, FloatingPointError) as err:
        # Bad input, an unusable file, or a checkpoint whose computation blew up (invert's NaN check):
        # a clear one-line message, no traceback.
        print(f"{prog}: error: {error_line(err)}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        from core.train import NonFiniteLossError

        if isinstance(err, NonFiniteLossError):
            print(f"{prog}: error: {error_line(err)}", file=sys.stderr)
            return 2
        return _internal(prog, err)
    except Exception as err:  # a bug: say so in one line; the traceback on request
        return _internal(prog, err)
    finally:
        warnings.showwarning = saved_showwarning
        for s, handler in old.items():
            signal.signal(s, handler)
        if previous is not None:  # in-process callers (tests) get their default back
            set_default_precision(previous)


def _stdout_gone() -> bool:
    """True when standard output is a pipe whose reader has closed it (poll reports an error on its
    write end); stdout is then pointed at os.devnull so that the interpreter's final flush does not
    fail a second time."""
    import select

    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        gone = any(event & select.POLLERR for _, event in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no real file descriptor, or no poll on this system
        return False
    if gone:
        os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
    return gone


def _internal(prog: str, err: Exception) -> int:
    if os.environ.get("PMF_TRACEBACK"):
        raise err
    print(f"{prog}: internal error: {type(err).__name__}: {error_line(err)} "
          "(a bug: please report it; PMF_TRACEBACK=1 shows the traceback)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
