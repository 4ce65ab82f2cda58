"""Redaction: swap personal data and secrets in prompts for stable placeholders, and put them back.

The pieces: patterns (what counts as an e-mail, phone, card, IBAN or secret, and `detect`) and
placeholders (`Redactor`: one request's mapping, restore, and `StreamRestorer`/`EventRestorer`
for streams), and walk (which texts of a chat request are redacted; unknown shapes refused).
"""

from aicli.redact.patterns import KINDS, Detection, detect
from aicli.redact.placeholders import EventRestorer, Redactor, StreamRestorer

__all__ = ["KINDS", "Detection", "EventRestorer", "Redactor", "StreamRestorer", "detect"]
