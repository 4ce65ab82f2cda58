"""The command line: the only layer that parses flags and prints. Nothing heavy is imported here."""
