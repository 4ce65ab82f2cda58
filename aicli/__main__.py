"""`python -m aicli` runs the same app as the `aicli` console script."""

from aicli.cli.app import main

if __name__ == "__main__":
    main()
