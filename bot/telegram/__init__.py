"""Telegram admin bot: approval cards, alerts, report approval and chat-ops commands.

The service (:class:`bot.telegram.service.TelegramBotService`) runs a python-telegram-bot
Application (long polling) and talks to the rest of the system only through Redis:
it consumes ``approvals``, ``alerts``, ``positions``, ``reports`` and ``control`` and
acts through ``core.approvals`` claims, the halt hash and ControlEvents.
"""

from bot.telegram.service import TelegramBotService

__all__ = ["TelegramBotService"]
