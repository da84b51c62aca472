"""The ``kft`` command line: parses arguments and calls the library. No logic here.

Heavy modules (TensorFlow) are imported inside each command, so ``kft --help``
and ``kft predict`` start fast. A ``KftError`` is a user mistake: it is printed
as one line and the exit code is 2.
"""

from __future__ import annotations

import os
import sys

import click

from kft.errors import KftError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@click.group()
@click.version_option(package_name="kft")
def cli():
    """Few-shot transfer learning to small, fast on-device image classifiers."""


@cli.command()
def backbones():
    """List backbones, their blocks, parameter counts and local ImageNet weights."""
    from kft.backbones.listing import format_backbones

    click.echo(format_backbones())


def main(argv=None) -> None:
    """Entry point: run the CLI, turning user errors into one line and exit code 2."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except KftError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
