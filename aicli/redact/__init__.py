"""Redaction: swap personal data and secrets in prompts for stable placeholders, and put them back.

The pieces: patterns (what counts as an e-mail, phone, card, IBAN or secret, and `detect`) and
placeholders (`Redactor`: one request's mapping, restore, and `StreamRestorer` for streamed text).
"""

from aicli.redact.patterns import KINDS, Detection, detect
from aicli.redact.placeholders import Redactor, StreamRestorer

__all__ = ["KINDS", "Detection", "Redactor", "StreamRestorer", "detect"]
