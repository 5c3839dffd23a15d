"""Parsers of worker CLIs' machine-readable output streams (one module per CLI format)."""

from supervisor.streams.claude import ClaudeStream, classify_claude
from supervisor.streams.codex import CodexStream
from supervisor.streams.common import OUTCOMES
from supervisor.streams.opencode import OpenCodeStream
from supervisor.streams.text import TextStream

__all__ = ["OUTCOMES", "ClaudeStream", "CodexStream", "OpenCodeStream", "TextStream", "classify_claude"]
