"""Parsers of worker CLIs' machine-readable output streams (one module per CLI format)."""

from aura.supervisor.streams.claude import ClaudeStream, classify_claude
from aura.supervisor.streams.codex import CodexStream
from aura.supervisor.streams.common import OUTCOMES
from aura.supervisor.streams.opencode import OpenCodeStream
from aura.supervisor.streams.text import TextStream

__all__ = ["OUTCOMES", "ClaudeStream", "CodexStream", "OpenCodeStream", "TextStream", "classify_claude"]
