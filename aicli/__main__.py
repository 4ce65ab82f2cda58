"""The process entry of the `aicli` command (console script and `python -m aicli`).

The app is imported with the collector paused and then frozen (see aicli/cli/startup.py):
~10 ms of a ~50 ms `aicli --help`. Collection is back on for the command itself, also when
this module is only imported (a spawned worker).
"""

from aicli.cli import startup

startup.enable()
with startup.long_lived():
    from aicli.cli.app import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
