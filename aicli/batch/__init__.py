"""Batch runs: `test-prompts --batch` answers a tier's calls through OpenAI's Batch API.

A batch is another way to call a tier, not another pipeline: `provider.BatchProvider` stands
in for a tier's provider, so every request is built, and every answer kept, by the engine (its
redaction, cache key, budget, cache write, redaction restore and recorder).

Layout: state.py (the resumable state file), files.py (the JSONL requests, split by count and
size), api.py (the Batch API over the openai SDK), results.py (result lines -> answers, hostile
lines dropped), scheduler.py (a run in rounds: collect, submit, follow, answer), provider.py
(the stand-ins for a tier's provider), run.py (opens a run: state, scheduler, providers; the
rounds).
"""
