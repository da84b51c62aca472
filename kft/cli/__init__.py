"""The ``kft`` command line: parses arguments, calls the library, prints. No logic here.

One module per command family (``train``: backbones, plan, train, evaluate;
``export``, ``predict``, ``compare``, ``bench``, ``serve``), each registering on
the group in ``group``. Heavy modules (TensorFlow) are imported inside each
command, so ``kft --help`` and ``kft predict`` start fast. Library code logs
through ``logging`` (``kft.log``); the group prints those lines. A ``KftError``
is a user mistake: it is printed as one line and the exit code is 2.
"""

from __future__ import annotations

import sys

import click

from kft.cli import bench, compare, export, predict, serve, train  # noqa: F401 - each registers its commands
from kft.cli.group import cli
from kft.errors import KftError, disk_full_error

__all__ = ["cli", "main"]


def main(argv=None) -> None:
    """Entry point: run the CLI, turning user errors into one line and exit code 2."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except KftError as e:
        click.echo(f"error: {as_flags(e, sys.argv[1:] if argv is None else argv)}", err=True)
        sys.exit(2)
    except OSError as e:  # a full disk met outside kft.rundir.atomic's writers is still the user's situation
        error = disk_full_error(e.filename or "a file", e)
        if error is None:
            raise
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)


def as_flags(error: KftError, argv) -> str:
    """``error``'s message as the command line spells it: the library names an option by its key,
    as `` `limit_test` `` or, for a bad value (``OptionError``), at the start; here the key becomes
    the running command's flag (``--limit-test``) where the command has one."""
    import re

    from kft.plan import OptionError

    command = next((cli.commands[a] for a in argv if a in cli.commands), None)
    options = [p for p in (command.params if command else []) if isinstance(p, click.Option) and not p.hidden]
    flags = {**{o.lstrip("-").replace("-", "_"): o for p in options for o in p.opts if o.startswith("--")},
             **{p.name: p.opts[0] for p in options}}
    text = str(error)
    if isinstance(error, OptionError) and error.key in flags:
        text = f"{flags[error.key]} {error.problem.lstrip(': ')}"
    return re.sub(r"`(\w+)`", lambda m: flags.get(m.group(1), m.group(0)), text)
