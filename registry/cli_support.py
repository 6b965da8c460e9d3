"""What every package's `cli.py` shares: the data home and engine of a command, its error exit, the actor.

Registry is the leftmost package, so imaging, biomarkers and prognosis take these from here
instead of each keeping a copy.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
import typer
from rich.console import Console
from sqlalchemy import Engine

from registry.db.engine import make_engine, require_current_schema
from registry.home import Home

err = Console(stderr=True)

# Errors that mean "the input or the state is not what this command needs": shown as one line
# naming what is wrong, exit status 1, no traceback. Anything else is a bug and keeps its traceback.
USER_ERRORS = (ValueError, LookupError, FileNotFoundError, NotADirectoryError, RuntimeError)
# ... except those raised inside a library (numpy's LinAlgError is a ValueError: "Singular matrix" says
# nothing of what was being done) and a bare KeyError / IndexError (its text is only the key: "error: 1").
# Those go on to `ctstudy.cli.main`, which names the command, says what the error means and what to do.
LIBRARY_ROOTS = frozenset({"numpy", "scipy", "pandas", "statsmodels", "sklearn", "lifelines", "torch", "monai",
                           "sqlalchemy", "pydicom", "nibabel", "highdicom", "SimpleITK", "patsy"})


def is_user_error(exc: BaseException) -> bool:
    """A failure that means the input or the state is wrong (one line, exit 1), not a bug or a library failure."""
    if not isinstance(exc, USER_ERRORS) or type(exc) in (KeyError, IndexError):
        return False
    return type(exc).__module__.split(".")[0] not in LIBRARY_ROOTS


def login_name() -> str:
    """Who runs the command, for the audit trail: the login name, or "cli" where there is none."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - containers without a passwd entry raise various errors
        return "cli"


@contextmanager
def open_registry(ctx: typer.Context,
                  explain: Callable[[Exception], None] | None = None) -> Iterator[tuple[Home, Engine]]:
    """The command's data home (from `ctx.obj`) and an engine on its database, disposed afterwards.

    A user error raised inside is printed (after `explain`, which may add detail such as every
    invalid CSV row) and turned into exit status 1.
    """
    home: Home = ctx.obj if isinstance(ctx.obj, Home) else Home.resolve()
    engine = make_engine(home.db_url)
    try:
        require_current_schema(engine)
        yield home, engine
    except (click.exceptions.Exit, typer.Exit):
        # typer.Exit is a RuntimeError: without this a command's deliberate `Exit(1)` (after it listed what
        # failed) was caught below and printed as a bare "error: 1".
        raise
    except USER_ERRORS as exc:
        if not is_user_error(exc):
            raise
        if explain is not None:
            explain(exc)
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
