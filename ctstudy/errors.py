"""One clear line for an unexpected failure of any command: which command, what went wrong in words, what to do.

`ctstudy.cli.main` catches what no command handled. A bare library message ("Singular matrix",
"database is locked") says neither what was being done nor what to do; here it becomes, e.g.

    error: `ctstudy prognosis fit` stopped: a linear-algebra step failed (LinAlgError: Singular matrix) ...

The traceback is for developers: `--debug` or CTSTUDY_DEBUG=1 shows it.
"""

from __future__ import annotations

import os

DEBUG_ENV = "CTSTUDY_DEBUG"
GROUPS = ("registry", "users", "imaging", "biomarkers", "prognosis")
# Root options that take a value: their value is not a command word.
OPTIONS_WITH_VALUE = ("--home", "--db-url")

# Exception class name -> what it means, in words. Looked up along the class's MRO, so a subclass
# (e.g. sqlite3.OperationalError under sqlalchemy's) finds the nearest meaning.
MEANINGS: dict[str, str] = {
    "LinAlgError": "a linear-algebra step failed (a matrix could not be inverted: usually a variable that is "
                   "constant, or perfectly predicted by others, in the data used)",
    "PerfectSeparationError": "a model could not be estimated: a variable separates the outcome perfectly",
    "ConvergenceError": "a model fit did not converge",
    "OperationalError": "the database could not be reached or refused the operation",
    "IntegrityError": "the database refused a change that would break its rules (a duplicate or a missing link)",
    "ProgrammingError": "the database schema is not what this version expects",
    "MemoryError": "the machine ran out of memory",
    "PermissionError": "a file or folder could not be accessed (permission denied)",
    "FileNotFoundError": "a file or folder does not exist",
    "IsADirectoryError": "a folder was given where a file is needed",
    "OSError": "a file-system or operating-system operation failed",
    "KeyError": "an expected name (column, field or key) is missing",
    "ValueError": "a value was not what the computation needs",
    "ZeroDivisionError": "a division by zero (an empty group or a constant variable)",
    "TypeError": "an internal type mismatch",
}


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def command_words(argv: list[str]) -> str:
    """`ctstudy registry progress` from the command line words (options and their values left out)."""
    words: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg.startswith("-"):
            skip = arg in OPTIONS_WITH_VALUE
            continue
        words.append(arg)
        if len(words) == 2 or words[0] not in GROUPS:
            break
    return " ".join(["ctstudy", *words])


def meaning(exc: BaseException) -> str:
    """What the exception means, in words (its class name where nothing better is known)."""
    for cls in type(exc).__mro__:
        if cls.__name__ in MEANINGS:
            return MEANINGS[cls.__name__]
    return "an unexpected internal error"


def failure_line(argv: list[str], exc: BaseException) -> str:
    """The one line printed for an unhandled exception in a command."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    raw = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return (f"error: `{command_words(argv)}` stopped: {meaning(exc)} ({raw}). Nothing stored before this step "
            f"was lost. Check the input named above; if it looks right, re-run with `ctstudy --debug ...` "
            f"(or {DEBUG_ENV}=1) for the traceback and report it.")
