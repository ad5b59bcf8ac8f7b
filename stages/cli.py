"""The `textpipe` console script: one subcommand per stage, in pipeline order, plus tools.

Subcommands are imported only when called, so `textpipe --help` is instant and
`textpipe ingest` does not pay for importing torch. Every user error, ours or
click's, is one line on stderr, `Error: <what is wrong; what to do>`, exit 2.

:func:`main` is the one error boundary: besides textpipe's own errors it turns
what the machine or a user's file can cause (:func:`expected_failure`: any
``OSError`` — a full or read-only disk, a path that is a file, a permission —,
memory exhausted by user-sized params, Arrow and YAML errors) into that line.
Outputs are written to temporary paths and renamed when whole, so nothing
half-written is left. Anything else is a bug: its traceback, then one line
saying so.
"""
from __future__ import annotations

import importlib
import signal
import sys

import click

from pipeline.core.errors import PipelineError
from pipeline.openmp import set_wait_policy
from pipeline.core.registry import STAGE_NAMES, STAGES, TOOLS

COMMANDS = {**{s.name: s.help for s in STAGES}, **TOOLS}
USER_ERROR = 2


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        return importlib.import_module(f"stages.{name}").main

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands (in pipeline order)"):
            formatter.write_dl(list(COMMANDS.items()))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="textpipe")
def cli() -> None:
    """textpipe: text-classification preprocessing and training, stage by stage.

    `dvc repro` runs every stage in order; `textpipe <stage>` runs one by hand
    with the same params.yaml.
    """


def one_line(message: str) -> str:
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


_SIGNALLED: list[int] = []


def _stop(signum: int, frame: object) -> None:
    _SIGNALLED.append(signum)
    raise KeyboardInterrupt


def interrupted_line(command: str | None) -> str:
    if command in STAGE_NAMES:
        kept = " (its resume point is kept)" if command == "train" else ""
        return f"Interrupted: {command} left no output{kept}; run dvc repro to start it again"
    return "Interrupted."


OS_HINTS = {  # errno name -> what to do
    "ENOSPC": "free some disk space, or move artifacts/ (or TMPDIR) to a disk with room",
    "EDQUOT": "free some of your disk quota, or move artifacts/ to a disk with room",
    "EROFS": "the file system is read-only: run from a writable copy of the project",
    "EACCES": "make it readable/writable for you, or run from a folder you own",
    "EPERM": "make it readable/writable for you, or run from a folder you own",
    "ENOTDIR": "a part of that path is a file, not a folder: rename or remove the file",
    "EISDIR": "that path is a folder where a file is expected: rename or remove the folder",
    "EEXIST": "something is already at that path: rename or remove it",
    "ENOENT": "check that the path exists",
    "EMFILE": "too many open files: raise the limit (ulimit -n) and rerun",
    "EMLINK": "too many links in that folder: clean it up and rerun",
}


def expected_failure(exc: BaseException) -> str | None:
    """The one line for a failure a user or their machine can cause and fix, or None (a bug)."""
    import errno

    if isinstance(exc, ConnectionError) and not exc.errno:
        return f"could not connect ({exc or type(exc).__name__}); check the address and that the service is up, then rerun"
    if isinstance(exc, OSError):
        name = errno.errorcode.get(exc.errno or 0, "")
        where = " ".join(f"'{f}'" for f in (exc.filename, exc.filename2) if f)
        what = exc.strerror or type(exc).__name__
        return f"{what}{': ' + where if where else ''}; {OS_HINTS.get(name, 'check that path and the disk, then rerun')}"
    if isinstance(exc, MemoryError):
        return ("out of memory; lower the sizes in params.yaml (train.max_tokens, train.batch_size, "
                "train.hidden_size, vocab.max_size) or free memory, then rerun")
    module = type(exc).__module__.split(".")[0]
    if module == "pyarrow":
        return f"could not read or write an Arrow/Parquet file: {exc}; rerun the stage that wrote it (dvc repro -f)"
    if module == "yaml":
        return f"could not parse YAML: {exc}; fix the file"
    if module == "ray" and not any(c.__name__ == "RayTaskError" for c in type(exc).__mro__):
        # the cluster's own failure (a node or worker lost, objects gone); a task's error is the task's
        text = str(exc).strip().splitlines()
        return (f"Ray failed ({type(exc).__name__}{': ' + text[0] if text else ''}); a node may have been lost or the "
                "cluster may be short of memory: check it (`ray status`), then rerun")
    return None


def main(args: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI, turning every user error into one `Error:` line.

    Ctrl-C and SIGTERM unwind the stage (its temporary output is removed, its workers stopped)
    and print one line; nothing half-written is left under an output's name.
    """
    set_wait_policy()  # before any stage imports torch
    words = sys.argv[1:] if args is None else args
    if not words:  # bare `textpipe`: the help, as `textpipe --help` (click >= 8.2 calls it a usage error)
        args = words = ["--help"]
    command = next((w for w in words if not w.startswith("-")), None)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        code = cli.main(args=args, prog_name="textpipe", standalone_mode=False)
    except PipelineError as exc:
        click.echo(f"Error: {one_line(exc)}", err=True)
        sys.exit(USER_ERROR)
    except click.UsageError as exc:
        where = f"textpipe {command} --help" if command in COMMANDS else "textpipe --help"
        click.echo(f"Error: {one_line(exc.format_message()).rstrip('.')}; see `{where}`", err=True)
        sys.exit(USER_ERROR)
    except click.ClickException as exc:
        click.echo(f"Error: {one_line(exc.format_message())}", err=True)
        sys.exit(USER_ERROR)
    except (click.Abort, KeyboardInterrupt):
        _interrupted(command)
    except Exception as exc:
        if _SIGNALLED:  # the signal landed inside an import or a C extension, which failed its own way
            _interrupted(command)
        if line := expected_failure(exc):
            click.echo(f"Error: {one_line(line)}", err=True)
            sys.exit(USER_ERROR)
        import traceback

        traceback.print_exc()
        click.echo(f"textpipe {command or ''}: this is a bug in textpipe, not in your data or params; please "
                   "report it with the traceback above and the command you ran", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _interrupted(command: str | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the line below
    click.echo(interrupted_line(command), err=True)
    sys.exit(130)
