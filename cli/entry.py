"""The ``runcap`` script: ``runcap statusline`` starts without the rest of the command.

Why: Claude Code runs its status line on every change of its conversation, and the rest of the
command (typer, rich, its tables) costs about 100 ms of start-up that the line does not need.
"""

from __future__ import annotations

import sys


def main() -> None:
    """``runcap statusline`` straight away; any other command through ``cli.main``."""
    if sys.argv[1:] == ["statusline"]:
        from cli.statusline import main as statusline

        statusline()
        return
    from cli.main import main as command

    command()
