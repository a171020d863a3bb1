"""Who may act: an allow-listed user id (``TELEGRAM_ADMIN_IDS``) writing in the admin chat
(``TELEGRAM_ADMIN_CHAT_ID``) or in their own private chat with the bot.

Both conditions hold for every command and every button press. An admin writing in some
other group is refused too: the bot may have been added anywhere, and an answer there
would show the system to people who are not admins. An empty allow-list lets nobody act
(fail closed).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.config.secrets import Secrets


def parse_chat_id(raw: str | None) -> int | str | None:
    """``"-1001234"`` -> -1001234, ``"@channel"`` -> "@channel", empty -> None."""
    value = (raw or "").strip()
    if not value:
        return None
    if value.lstrip("-").isdigit():
        return int(value)
    return value


@dataclass(frozen=True)
class Auth:
    admin_ids: frozenset[int]
    admin_chat: int | str | None

    @classmethod
    def from_secrets(cls, secrets: Secrets) -> Auth:
        return cls(secrets.admin_ids(), parse_chat_id(secrets.telegram_admin_chat_id))

    def allowed(self, user_id: int | None, chat_id: int | str | None) -> bool:
        if user_id is None or user_id not in self.admin_ids:
            return False
        if chat_id is None:
            return False
        return chat_id == user_id or (self.admin_chat is not None and chat_id == self.admin_chat)

    @property
    def home_chat(self) -> int | str | None:
        """Where cards and alerts go: the admin chat, else the first admin's private chat."""
        if self.admin_chat is not None:
            return self.admin_chat
        return min(self.admin_ids) if self.admin_ids else None
