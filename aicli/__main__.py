"""The process entry of the `aicli` command (console script and `python -m aicli`).

Start-up time: importing the CLI creates tens of thousands of objects that live until exit.
The cyclic garbage collector would walk them all several times while they load and once more
at exit: ~10 ms of a ~50 ms `aicli --help`. So it is off while the app is imported, and what
the import made is then frozen (gc.freeze: left out of every later collection). Collection is
back on for the command itself, also when this module is only imported (a spawned worker).
"""

import gc

gc.disable()
try:
    from aicli.cli.app import main
finally:
    gc.freeze()
    gc.enable()

__all__ = ["main"]

if __name__ == "__main__":
    main()
