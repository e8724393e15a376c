"""The Telegram adapter (python-telegram-bot): the only package that may import ``telegram``.

``TelegramAdapter(app, settings.telegram)`` serves an ``App`` on Telegram; ``atelier
run`` starts it when ``ATELIER_TELEGRAM__TOKEN`` is set. Modules: ``client`` (the PTB
application, updates, admins, command menus), ``translate`` (PTB objects → events with
their facts and attachments; reply text → HTML), ``render`` (the shared renderer's
Telegram target), ``actions`` (what plugins may do: delete, restrict, post). Like every
adapter it translates and renders; it decides nothing the core decides.
"""

from __future__ import annotations

import os

# Durations from PTB as timedeltas (its coming default): without this, reading
# ``RetryAfter.retry_after`` warns, and a 429 under ``filterwarnings = error`` breaks.
os.environ.setdefault("PTB_TIMEDELTA", "1")

from .client import TelegramAdapter

__all__ = ["TelegramAdapter"]
