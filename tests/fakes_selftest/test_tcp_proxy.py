"""The TCP proxy fake: bytes pass both ways; refuse closes new connections at once and leaves open
ones alone; cut drops the open ones; pass_through forwards again. Against a small echo server, and
through psycopg 3 against the real PostgreSQL (what the ledger tests put behind it)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.fakes.tcp_proxy import TcpProxy
from tests.ledger.conftest import SERVER_URL


@pytest.fixture
async def echo_port():
    async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while data := await r.read(1024):
            w.write(data)
            await w.drain()
        w.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def _roundtrip(port: int, payload: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(payload)
    await w.drain()
    return r, w, await asyncio.wait_for(r.readexactly(len(payload)), 5)


async def test_bytes_pass_and_faults_apply(echo_port):
    with TcpProxy("127.0.0.1", echo_port) as proxy:
        _, port = proxy.start()
        r1, w1, got = await _roundtrip(port, b"x" * 200_000)  # several chunks each way
        assert got == b"x" * 200_000 and proxy.forwarded == 1

        proxy.refuse()
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(r2.read(10), 5) == b""  # accepted, closed at once
        w2.close()
        w1.write(b"still")  # an open connection survives refuse()
        assert await asyncio.wait_for(r1.readexactly(5), 5) == b"still"
        assert proxy.refused == 1 and proxy.open == 1

        assert proxy.cut() == 1
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            data = await asyncio.wait_for(r1.read(10), 5)
            if data == b"":
                raise ConnectionError("EOF")
        w1.close()
        assert proxy.open == 0 and proxy.cut_count == 1

        proxy.pass_through()
        _, w3, got = await _roundtrip(port, b"back")
        assert got == b"back" and proxy.forwarded == 2
        w3.close()


def _dsn(port: int) -> str:
    u = make_url(SERVER_URL)
    return f"host=127.0.0.1 port={port} dbname={u.database} user={u.username} password={u.password or ''} " \
           f"connect_timeout=3"


def test_postgres_through_the_proxy_sees_the_outage():
    u = make_url(SERVER_URL)
    with TcpProxy(u.host or "127.0.0.1", u.port or 5432) as proxy:
        _, port = proxy.start()
        conn = psycopg.connect(_dsn(port), autocommit=True)
        assert conn.execute("SELECT 1").fetchone() == (1,)
        proxy.down()
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
        conn.close()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(_dsn(port))
        proxy.pass_through()
        with psycopg.connect(_dsn(port), autocommit=True) as again:
            assert again.execute("SELECT 2").fetchone() == (2,)
