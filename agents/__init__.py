"""LLM backends as LangChain chat models, and (in ``agents.agent``) the agent using them.

Importing this package loads nothing heavy: llama.cpp and httpx are imported by the
backend modules, which ``agents.factory.build_chat_model`` picks from the settings.
"""

from __future__ import annotations
