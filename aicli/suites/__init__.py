"""Prompt regression suites for `aicli test-prompts`: model, assertions, runner and reports."""
