"""The Discord fake, driven through the real discord.py (REST only, no gateway)."""

from __future__ import annotations

import asyncio
import io
import time

import aiohttp
import discord
import pytest

from tests.fakes.discord_api import FakeDiscord

CHANNEL_ID = 1300000000000000001
GUILD_ID = 1200000000000000001
TOKEN = "fake-bot-token"


@pytest.fixture(scope="session")
def discord_fake() -> FakeDiscord:
    return FakeDiscord.shared()


@pytest.fixture
def fake(discord_fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch) -> FakeDiscord:
    discord_fake.reset()
    discord_fake.add_channel(CHANNEL_ID, "signals", GUILD_ID)
    monkeypatch.setattr(discord.http.Route, "BASE", discord_fake.api_base)
    return discord_fake


@pytest.fixture
async def client(fake: FakeDiscord):
    c = discord.Client(intents=discord.Intents.none())
    await c.login(TOKEN)
    try:
        yield c
    finally:
        await c.close()


async def test_login_and_fetch_channel(client: discord.Client, fake: FakeDiscord) -> None:
    assert client.user is not None and client.user.id == FakeDiscord.BOT_USER_ID
    assert client.application_id == FakeDiscord.APPLICATION_ID
    channel = await client.fetch_channel(CHANNEL_ID)
    assert isinstance(channel, discord.TextChannel)
    assert channel.guild.id == GUILD_ID and channel.name == "signals"
    kinds = [r.kind for r in fake.requests()]
    assert kinds == ["get_me", "get_application", "get_channel"]
    assert fake.requests("get_me")[0].headers["Authorization"] == f"Bot {TOKEN}"


async def test_unknown_channel_and_bad_token(fake: FakeDiscord) -> None:
    c = discord.Client(intents=discord.Intents.none())
    await c.login(TOKEN)
    try:
        with pytest.raises(discord.NotFound) as exc:
            await c.fetch_channel(999)
        assert exc.value.code == 10003
    finally:
        await c.close()
    strict = FakeDiscord(token="right")
    with strict:
        c2 = discord.Client(intents=discord.Intents.none())
        discord.http.Route.BASE = strict.api_base  # restored by the `fake` fixture's monkeypatch
        try:
            with pytest.raises(discord.LoginFailure):
                await c2.login("wrong")
        finally:
            await c2.close()


async def test_send_text_and_embed_then_read_back(client: discord.Client, fake: FakeDiscord) -> None:
    channel = await client.fetch_channel(CHANNEL_ID)
    m1 = await channel.send(content="SPY 450C filled")
    embed = discord.Embed(title="Fill", description="1 lot @ 2.15", colour=0x2ECC71)
    embed.add_field(name="P&L", value="+$35")
    m2 = await channel.send(embed=embed)
    assert m1.content == "SPY 450C filled" and m1.channel.id == CHANNEL_ID
    assert m2.embeds[0].title == "Fill" and m2.embeds[0].fields[0].value == "+$35"
    stored = fake.messages(CHANNEL_ID)
    assert [m["id"] for m in stored] == [str(m1.id), str(m2.id)]
    assert stored[1]["embeds"][0]["description"] == "1 lot @ 2.15"
    # reconciliation read: newest first
    history = [m async for m in channel.history(limit=10)]
    assert [m.id for m in history] == [m2.id, m1.id]
    again = await channel.fetch_message(m1.id)
    assert again.content == "SPY 450C filled"
    with pytest.raises(discord.NotFound):
        await channel.fetch_message(12345)


async def test_validation_errors(client: discord.Client, fake: FakeDiscord) -> None:
    channel = await client.fetch_channel(CHANNEL_ID)
    with pytest.raises(discord.HTTPException) as exc:
        await channel.send(content="x" * 2001)
    assert exc.value.status == 400 and exc.value.code == 50035
    assert fake.messages(CHANNEL_ID) == []


async def test_thread_from_message_and_post_in_it(client: discord.Client, fake: FakeDiscord) -> None:
    channel = await client.fetch_channel(CHANNEL_ID)
    root = await channel.send(content="Morning brief")
    thread = await root.create_thread(name="Morning brief 2026-11-20")
    assert isinstance(thread, discord.Thread)
    assert thread.id == root.id and thread.parent_id == CHANNEL_ID
    reply = await thread.send(content="detail 1")
    assert reply.channel.id == thread.id
    threads = fake.threads()
    assert len(threads) == 1 and threads[0]["type"] == 11 and threads[0]["parent_id"] == str(CHANNEL_ID)
    assert [m["content"] for m in fake.messages(thread.id)] == ["detail 1"]
    assert fake.message(root.id)["flags"] & 32  # HAS_THREAD
    with pytest.raises(discord.HTTPException) as exc:
        await root.create_thread(name="again")
    assert exc.value.code == 160004


async def test_429_is_retried_by_discord_py(client: discord.Client, fake: FakeDiscord) -> None:
    channel = await client.fetch_channel(CHANNEL_ID)
    fake.fail_next("send_message", "429", count=2, retry_after=0.2)
    t0 = time.monotonic()
    msg = await channel.send(content="after rate limit")
    assert time.monotonic() - t0 >= 0.35
    sends = fake.requests("send_message")
    assert [r.status for r in sends] == [429, 429, 200]
    assert [m["id"] for m in fake.messages(CHANNEL_ID)] == [str(msg.id)]


async def test_5xx(client: discord.Client, fake: FakeDiscord) -> None:
    channel = await client.fetch_channel(CHANNEL_ID)
    # 503 is not retried by discord.py
    fake.fail_next("send_message", "5xx", status=503)
    with pytest.raises(discord.DiscordServerError):
        await channel.send(content="lost")
    assert fake.messages(CHANNEL_ID) == []
    # 500 is retried (after 1 s); with applied=True the first attempt did post, and the
    # retry carries the same nonce, so enforce_nonce keeps it to ONE message.
    fake.fail_next("send_message", "5xx", status=500, applied=True)
    msg = await channel.send(content="posted once")
    assert [r.status for r in fake.requests("send_message")][-2:] == [500, 200]
    assert [m["content"] for m in fake.messages(CHANNEL_ID)] == ["posted once"]
    assert fake.messages(CHANNEL_ID)[0]["id"] == str(msg.id)


async def test_enforce_nonce_dedupe(client: discord.Client, fake: FakeDiscord) -> None:
    channel = await client.fetch_channel(CHANNEL_ID)
    a = await channel.send(content="alert #42", nonce="alert-42")
    b = await channel.send(content="alert #42 (retry)", nonce="alert-42")
    assert a.id == b.id and b.content == "alert #42"
    c = await channel.send(content="alert #43", nonce="alert-43")
    assert c.id != a.id
    assert [m["nonce"] for m in fake.messages(CHANNEL_ID)] == ["alert-42", "alert-43"]


async def test_slow_and_dropped(client: discord.Client, fake: FakeDiscord) -> None:
    channel = await client.fetch_channel(CHANNEL_ID)
    fake.fail_next("send_message", "slow", delay=0.6)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(channel.send(content="slow", nonce="slow-1"), 0.2)
    await asyncio.sleep(0.6)
    assert [m["content"] for m in fake.messages(CHANNEL_ID)] == ["slow"]  # applied anyway
    fake.fail_next("send_message", "drop")
    with pytest.raises((aiohttp.ClientError, OSError)):
        await channel.send(content="dropped")
    assert [m["content"] for m in fake.messages(CHANNEL_ID)] == ["slow"]
    assert fake.requests("send_message")[-1].fault == "drop"


async def test_webhook_execute_wait_and_thread(client: discord.Client, fake: FakeDiscord) -> None:
    channel = await client.fetch_channel(CHANNEL_ID)
    root = await channel.send(content="root")
    thread = await root.create_thread(name="t")
    url = fake.add_webhook(1400000000000000001, channel_id=CHANNEL_ID, name="Quanticity Alerts")
    hook = discord.Webhook.from_url(url, client=client)
    m = await hook.send("via webhook", wait=True)
    assert m.webhook_id == 1400000000000000001 and m.channel.id == CHANNEL_ID
    m2 = await hook.send("into thread", thread=discord.Object(thread.id), wait=True)
    assert m2.channel.id == thread.id
    assert await hook.send("no wait") is None
    assert [x["content"] for x in fake.messages(CHANNEL_ID)] == ["root", "via webhook", "no wait"]
    assert [x["content"] for x in fake.messages(thread.id)] == ["into thread"]
    rec = fake.requests("execute_webhook")[1]
    assert rec.query["thread_id"] == str(thread.id) and rec.query["wait"] == "1"
    fake.fail_next("execute_webhook", "429", retry_after=0.1)
    assert (await hook.send("after 429", wait=True)).content == "after 429"


async def test_send_file_multipart(client: discord.Client, fake: FakeDiscord) -> None:
    channel = await client.fetch_channel(CHANNEL_ID)
    msg = await channel.send(
        content="chart", file=discord.File(io.BytesIO(b"\x89PNG fake"), filename="pnl.png")
    )
    assert msg.attachments[0].filename == "pnl.png" and msg.attachments[0].size == 9
    rec = fake.requests("send_message")[0]
    assert rec.json["content"] == "chart" and rec.files[0]["data"] == b"\x89PNG fake"
