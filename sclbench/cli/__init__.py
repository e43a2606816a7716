"""The `sclbench` command line: thin typer wrappers around the library.

Each verb group lives in its own module and only parses arguments and calls the library. What the user
sees when something goes wrong (`main`):
- an error the user can cause (`SCLBenchError`, or an OSError about a path: permission, read-only file
  system, not a folder, no space, file too large, ...) is one `error:` line, exit code 2;
- a bad option value (not a number, out of range, NaN, a missing input path) is one `error:` line
  naming the option, exit 2; a usage error (unknown option or verb, missing argument) is click's
  usage line and one `Error:` line, exit 2;
- anything else is a bug in sclbench: one `error:` line saying so, exit code 1; the traceback is
  printed when SCLBENCH_DEBUG=1. Library callers (and tests calling `app`) still get the exception.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import typer

from sclbench import __version__
from sclbench.cli._click import click_exception_types, is_bad_value
from sclbench.errors import SCLBenchError, describe_os_error, is_user_os_error

app = typer.Typer(
    name="sclbench",
    help="SCL vision-language model: fine-tune, evaluate, pre-train, reproduce tables, check drift.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    epilog="Errors you can fix are one `error:` line (exit 2). An internal error says it is a bug (exit 1); "
    "SCLBENCH_DEBUG=1 prints its traceback.",
)


@app.callback()
def _options(
    cards: str = typer.Option(
        None,
        "--cards",
        metavar="DIR",
        envvar="SCLBENCH_TASKS_DIR",
        help="a folder of your own task cards (*.yaml): they override or add to the packaged ones",
    ),
) -> None:
    """SCL vision-language model: fine-tune, evaluate, pre-train, reproduce tables, check drift."""
    if cards:
        if not Path(cards).expanduser().is_dir():  # checked here: the card loader would only see no cards
            raise typer.BadParameter(
                f"{cards!r} is not a folder (of task cards *.yaml)", param_hint="'--cards' / SCLBENCH_TASKS_DIR"
            )
        os.environ["SCLBENCH_TASKS_DIR"] = cards


@app.command()
def version() -> None:
    """Print the sclbench, torch and transformers versions."""
    import torch
    import transformers

    typer.echo(f"sclbench {__version__} (torch {torch.__version__}, transformers {transformers.__version__})")


def _register() -> None:
    # Imported here so that `sclbench --help` stays fast and each group owns its own module.
    from sclbench.cli import browse, ckpt, compare, data, demo, jobs, results, score

    app.add_typer(ckpt.app, name="ckpt", help="The checkpoint registry; fetch, inspect and convert checkpoints.")
    app.add_typer(data.app, name="data", help="Generate the synthetic mini-benchmark, check data layouts.")
    jobs.register(app)
    demo.register(app)
    results.register(app)
    compare.register(app)
    browse.register(app)
    score.register(app)
    try:
        from sclbench.cli import predict
    except ImportError as err:  # pragma: no cover - only while the module is absent
        if "sclbench.cli.predict" not in str(err) and "cannot import name 'predict'" not in str(err):
            raise
    else:
        predict.register(app)


_register()


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the app, turning user errors into one clear line and exit code 2, and
    usage errors (unknown option, missing argument, unknown verb) into click's usage line + exit 2."""
    rc = _run(argv)
    if "torch.distributed" in sys.modules:  # only a verb that ran (or tried) a job can have joined a group
        from sclbench.app.jobs import leave_process_group

        leave_process_group(finished=rc == 0)
    return rc


def _run(argv: list[str] | None) -> int:
    try:
        # In non-standalone mode click returns the code of a `typer.Exit` instead of raising it.
        rc = app(args=argv, standalone_mode=False)
    except SCLBenchError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 1
    except click_exception_types() as exc:
        if is_bad_value(exc):  # a wrong value is the user's error: one line naming the option
            message = exc.format_message()  # type: ignore[attr-defined]
            typer.secho(f"error: {message[:1].lower()}{message[1:]}", fg=typer.colors.RED, err=True)
            return 2
        exc.show()  # usage errors: the usage line and the message, the way click prints them
        return exc.exit_code  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except BrokenPipeError:  # `sclbench table | head`: the reader has gone, there is no one to tell
        _silence_stdout()
        return 1
    except OSError as err:
        if not is_user_os_error(err):
            return _report_bug(err)
        typer.secho(f"error: {describe_os_error(err)}", fg=typer.colors.RED, err=True)
        return 2
    except Exception as err:  # noqa: BLE001 - a bug: say so in one line, not a traceback the user can't act on
        return _report_bug(err)
    return rc if isinstance(rc, int) else 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit does not raise a second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a file (captured in tests)
        pass


def _report_bug(err: BaseException) -> int:
    """One line (exit 1) for an error that is not the user's; the traceback with SCLBENCH_DEBUG=1."""
    if os.environ.get("SCLBENCH_DEBUG", "") not in ("", "0"):
        traceback.print_exception(err)
    message = " ".join(str(err).split())[:300]
    typer.secho(
        f"error: internal error ({type(err).__name__}: {message}); this is a bug in sclbench, please report "
        "it with the command you ran (SCLBENCH_DEBUG=1 prints the traceback)",
        fg=typer.colors.RED,
        err=True,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
