"""Command groups loaded only when they run, so `ctstudy --help` and registry commands start fast.

Importing every package's `cli.py` up front pulls torch, MONAI, statsmodels, lifelines, scikit-learn,
Streamlit and highdicom into every command: about 9 of the 10-15 s a command took to start. Click
resolves a command by name before running it, so the group below imports a command's module then,
and lists the others from their one-line help without importing them. (Typer has no lazy sub-apps;
this is click's documented "lazy loading of subcommands" pattern on a TyperGroup.)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import click
import typer
from typer.core import TyperGroup


@dataclass(frozen=True)
class LazyCommand:
    target: str  # "module:attribute": a typer.Typer (a group) or a command function
    help: str  # the one line shown by `ctstudy --help`, without importing the module


# Filled by ctstudy.cli; insertion order is the order in `ctstudy --help`.
LAZY_COMMANDS: dict[str, LazyCommand] = {}


def load_command(name: str) -> click.Command:
    """The click command `name` of LAZY_COMMANDS, importing its module now."""
    spec = LAZY_COMMANDS[name]
    module_name, attribute = spec.target.split(":")
    obj = getattr(importlib.import_module(module_name), attribute)
    if isinstance(obj, typer.Typer):
        command = typer.main.get_command(obj)
    else:  # a plain command function, mounted alone
        single = typer.Typer()
        single.command(name, help=spec.help if not obj.__doc__ else None)(obj)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """A TyperGroup whose LAZY_COMMANDS are imported only when resolved to run (or asked for help)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in LAZY_COMMANDS if n not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in LAZY_COMMANDS:
            return super().get_command(ctx, cmd_name)
        # For the root help listing only: a stand-in that carries the help line. Running a command goes
        # through resolve_command, which loads the real one.
        help_line = LAZY_COMMANDS[cmd_name].help
        return click.Command(cmd_name, help=help_line, short_help=help_line)

    def resolve_command(self, ctx: click.Context, args: list[str]
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name in LAZY_COMMANDS and name not in self.commands:
            command = load_command(name)
            self.commands[name] = command  # once loaded, it is an ordinary command of this group
        return name, command, rest
