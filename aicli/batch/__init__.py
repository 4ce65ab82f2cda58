"""Batch runs: `test-prompts --batch` answers a tier's calls through OpenAI's Batch API.

A batch is another way to call a tier, not another pipeline: `provider.BatchProvider` stands
in for a tier's provider, so every answer still goes through the engine's budget, cache write,
redaction restore and recorder. Layout: state.py (the resumable state file), files.py (the
JSONL requests, split by count and size), api.py (the Batch API over the openai SDK),
results.py (result lines -> answers, hostile lines dropped), scheduler.py (gathers calls into
batches, submits, polls, resolves each call's future), provider.py (the tier's stand-in),
run.py (opens a run: state, scheduler, providers).
"""
