"""The Telegram Bot API fake, driven through the real python-telegram-bot."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import warnings

import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter
from telegram.ext import CallbackQueryHandler, CommandHandler, ContextTypes

from tests.fakes import telegram_api
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegram

# session-wide fake, reset before each test
telegram_fake_session = telegram_api.telegram_fake_session
telegram_fake = telegram_api.telegram_fake

ADMIN = 1001
KB = InlineKeyboardMarkup(
    [
        [
            InlineKeyboardButton("Approve", callback_data="approve:7"),
            InlineKeyboardButton("Reject", callback_data="reject:7"),
        ]
    ]
)


def _seconds(value: object) -> float:
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return float(value)  # type: ignore[arg-type]


async def test_get_me_and_send_message_with_keyboard(telegram_fake: FakeTelegram) -> None:
    async with telegram_fake.bot() as bot:
        me = await bot.get_me()
        assert me.is_bot and me.id == 123456789 and me.username == telegram_fake.bot_username
        msg = await bot.send_message(ADMIN, "Order #7 needs approval", reply_markup=KB)

    assert msg.message_id >= 1 and msg.chat.id == ADMIN and msg.from_user.id == me.id
    assert msg.date.timestamp() > 0
    assert msg.reply_markup == KB
    sent = telegram_fake.sent_messages(ADMIN)
    assert [m["text"] for m in sent] == ["Order #7 needs approval"]
    req = telegram_fake.requests("sendMessage")[-1]
    assert req.params["chat_id"] == ADMIN  # JSON-decoded form field
    assert req.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "approve:7"
    assert req.token == DEFAULT_TOKEN
    # Content-Type is exactly application/json
    get_me = telegram_fake.requests("getMe")
    assert get_me and get_me[0].http_method == "POST"


async def test_edits_are_validated(telegram_fake: FakeTelegram) -> None:
    async with telegram_fake.bot() as bot:
        msg = await bot.send_message(ADMIN, "pending", reply_markup=KB)
        edited = await bot.edit_message_text(
            "approved", chat_id=ADMIN, message_id=msg.message_id, reply_markup=KB
        )
        assert edited.text == "approved" and edited.edit_date is not None and edited.reply_markup == KB

        with pytest.raises(BadRequest, match="not modified"):
            await bot.edit_message_text("approved", chat_id=ADMIN, message_id=msg.message_id, reply_markup=KB)
        with pytest.raises(BadRequest, match="[Mm]essage to edit not found"):
            await bot.edit_message_text("x", chat_id=ADMIN, message_id=999_999)

        # Like Telegram: editMessageText without reply_markup removes the keyboard.
        await bot.edit_message_text("done", chat_id=ADMIN, message_id=msg.message_id)
        assert "reply_markup" not in (telegram_fake.message(ADMIN, msg.message_id) or {})

        await bot.edit_message_reply_markup(chat_id=ADMIN, message_id=msg.message_id, reply_markup=KB)
        assert (telegram_fake.message(ADMIN, msg.message_id) or {})["reply_markup"]["inline_keyboard"]

        with pytest.raises(BadRequest, match="(?i)can't parse entities"):
            await bot.send_message(ADMIN, "P&L up 1.5%", parse_mode="MarkdownV2")
        await bot.send_message(ADMIN, "P&amp;L <b>up</b> 1.5%", parse_mode="HTML")

        assert await bot.delete_message(ADMIN, msg.message_id)
        with pytest.raises(BadRequest, match="not found"):
            await bot.delete_message(ADMIN, msg.message_id)

    edits = telegram_fake.edits(ADMIN, msg.message_id)
    assert [e["method"] for e in edits] == ["editMessageText", "editMessageText", "editMessageReplyMarkup"]
    assert telegram_fake.message(ADMIN, msg.message_id) is None


async def test_documents_photos_and_commands(telegram_fake: FakeTelegram) -> None:
    async with telegram_fake.bot() as bot:
        doc = await bot.send_document(ADMIN, b"%PDF-fake", filename="daily.pdf", caption="Daily report")
        assert doc.document.file_name == "daily.pdf" and doc.caption == "Daily report"
        photo = await bot.send_photo(ADMIN, b"\x89PNG fake", caption="chart")
        assert photo.photo and photo.caption == "chart"
        data = await (await bot.get_file(doc.document.file_id)).download_as_bytearray()
        assert bytes(data) == b"%PDF-fake"

        await bot.set_my_commands([("halt", "Halt trading"), ("status", "Desk status")])
        assert [c.command for c in await bot.get_my_commands()] == ["halt", "status"]

    docs = telegram_fake.documents(ADMIN)
    assert (docs[0]["method"], docs[0]["filename"], docs[0]["data"]) == (
        "sendDocument",
        "daily.pdf",
        b"%PDF-fake",
    )
    assert docs[1]["method"] == "sendPhoto" and docs[1]["caption"] == "chart"


async def test_get_updates_long_poll_wakes_on_injection(telegram_fake: FakeTelegram) -> None:
    async with telegram_fake.bot() as bot:
        assert await bot.get_updates(timeout=0) == ()
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, telegram_fake.send_command, ADMIN, None, "/halt vol spike")
        t0 = time.monotonic()
        updates = await bot.get_updates(timeout=5)
        assert time.monotonic() - t0 < 2.0
        assert len(updates) == 1
        msg = updates[0].message
        assert msg.text == "/halt vol spike" and msg.entities[0].type == "bot_command"
        # offset semantics: not confirmed yet -> delivered again, confirmed -> gone
        again = await bot.get_updates(timeout=0)
        assert [u.update_id for u in again] == [updates[0].update_id]
        assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=0) == ()


async def test_button_press_reaches_callback_handler_in_running_application(
    telegram_fake: FakeTelegram,
) -> None:
    seen: list[tuple[str, str]] = []

    async def on_halt(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        seen.append(("halt", " ".join(context.args or [])))
        await update.effective_chat.send_message("Halt requested", reply_markup=KB)

    async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and isinstance(query.data, str)
        seen.append(("button", query.data))
        await query.answer("Approved")
        await query.edit_message_text(f"Resolved: {query.data}")

    app = telegram_fake.application_builder().build()
    app.add_handler(CommandHandler("halt", on_halt))
    app.add_handler(CallbackQueryHandler(on_button))
    async with app:
        await app.start()
        await app.updater.start_polling(poll_interval=0.0, timeout=dt.timedelta(seconds=2))
        try:
            telegram_fake.send_command(ADMIN, None, "/halt news")
            prompt = await telegram_fake.wait_for_sent_async(ADMIN, "Halt requested", timeout=5)
            update = telegram_fake.press_button(ADMIN, ADMIN, prompt["message_id"], "approve:7")
            answers = await telegram_fake.wait_for_async(
                lambda: telegram_fake.callback_answers(update["callback_query"]["id"]), timeout=5
            )
            await telegram_fake.wait_for_async(
                lambda: telegram_fake.edits(ADMIN, prompt["message_id"]), timeout=5
            )
        finally:
            await app.updater.stop()
            await app.stop()

    assert seen == [("halt", "news"), ("button", "approve:7")]
    assert answers[0]["text"] == "Approved"
    current = telegram_fake.message(ADMIN, prompt["message_id"])
    assert current is not None
    assert current["text"] == "Resolved: approve:7" and "reply_markup" not in current
    methods = [r.api_method for r in telegram_fake.requests()]
    assert methods[:2] == ["getMe", "deleteWebhook"] and "getUpdates" in methods
    # the button cannot be pressed any more: the keyboard is gone
    with pytest.raises(ValueError, match="no button"):
        telegram_fake.press_button(ADMIN, ADMIN, prompt["message_id"], "approve:7")


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_429_raises_retry_after(telegram_fake: FakeTelegram) -> None:
    telegram_fake.fail_next("sendMessage", "429", retry_after=1)
    async with telegram_fake.bot() as bot:
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(ADMIN, "x")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert _seconds(info.value.retry_after) == 1
        # only one fault was queued: next call succeeds
        await bot.send_message(ADMIN, "y")
    reqs = telegram_fake.requests("sendMessage")
    assert [r.fault for r in reqs] == ["429", None]


@pytest.mark.parametrize("status", [500, 502])
async def test_5xx_raises_network_error(telegram_fake: FakeTelegram, status: int) -> None:
    telegram_fake.fail_next("sendMessage", "5xx", status=status)
    async with telegram_fake.bot() as bot:
        with pytest.raises(NetworkError) as info:
            await bot.send_message(ADMIN, "x")
        assert not isinstance(info.value, BadRequest | RetryAfter)


async def test_drop_slow_and_blocked(telegram_fake: FakeTelegram) -> None:
    async with telegram_fake.bot() as bot:
        telegram_fake.fail_next("sendMessage", "drop")
        with pytest.raises(NetworkError):
            await bot.send_message(ADMIN, "x")

        telegram_fake.fail_next("*", "slow", delay=0.3)
        t0 = time.monotonic()
        await bot.send_message(ADMIN, "slow")
        assert time.monotonic() - t0 >= 0.3

        telegram_fake.block_chat(ADMIN)
        with pytest.raises(Forbidden, match="blocked"):
            await bot.send_message(ADMIN, "x")
    assert [r.fault for r in telegram_fake.requests("sendMessage")] == ["drop", "slow", None]
