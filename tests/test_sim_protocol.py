"""The wire protocol seen from a raw socket: handshake, versions, framing."""

from __future__ import annotations

import asyncio
import struct

import pytest

from ibhost.sim import Simulator
from ibhost.sim.protocol import FrameReader, fmt, frame, frame_raw, parse_version_range


async def handshake(sim: Simulator, versions: str) -> tuple[asyncio.StreamReader,
                                                            asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    writer.write(b"API\0" + frame_raw([versions]))
    await writer.drain()
    return reader, writer


async def read_msgs(reader: asyncio.StreamReader, n: int, timeout: float = 2.0) -> list[list[str]]:
    fr = FrameReader()
    out: list[list[str]] = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            data = await reader.read(65536)
            if not data:
                break
            out += fr.feed(data)
    return out


@pytest.mark.parametrize(("offer", "answer"), [
    ("v157..178", "178"), ("v157..176", "176"), ("v100..200", "178"), ("v100..163", "163"),
    ("v157..178 +PACEAPI", "178"), ("v190..226", "178"),
])
async def test_server_version_is_min_of_client_max_and_178(sim: Simulator, offer: str,
                                                           answer: str) -> None:
    reader, writer = await handshake(sim, offer)
    [first] = await read_msgs(reader, 1)
    assert len(first) == 2  # exactly version and connection time
    assert first[0] == answer
    assert first[1][:8].isdigit()
    writer.close()


async def test_too_old_client_is_refused(sim: Simulator) -> None:
    reader, writer = await handshake(sim, "v100..150")
    assert await reader.read(100) == b""  # closed without an answer
    writer.close()


async def test_bad_prefix_is_refused(sim: Simulator) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    writer.write(b"GET / HTTP/1.1\r\n\r\n")
    await writer.drain()
    assert await reader.read(100) == b""
    writer.close()


async def test_start_api_then_accounts_ids_and_farm_notices(sim: Simulator) -> None:
    reader, writer = await handshake(sim, "v157..178")
    await read_msgs(reader, 1)
    writer.write(frame([71, 2, 5, ""]))
    await writer.drain()
    msgs = await read_msgs(reader, 5)
    assert ["15", "1", "DU1234567"] in msgs
    assert ["9", "1", "1"] in msgs
    codes = [m[3] for m in msgs if m[0] == "4"]
    assert codes == ["2104", "2106", "2158"]
    assert all(len(m) == 6 for m in msgs if m[0] == "4")  # v>=166 adds the JSON field
    writer.close()


async def test_error_layout_before_166(sim: Simulator) -> None:
    reader, writer = await handshake(sim, "v157..163")
    await read_msgs(reader, 1)
    writer.write(frame([71, 2, 5, ""]))
    await writer.drain()
    msgs = await read_msgs(reader, 5)
    errors = [m for m in msgs if m[0] == "4"]
    assert errors and all(len(m) == 5 for m in errors)
    # contract details at 163 keep the version field and mdSizeMultiplier
    writer.write(frame([9, 8, 42, 0, "AAPL", "STK", "", 0.0, "", "", "SMART", "", "USD", "", "",
                        0, "", ""]))
    await writer.drain()
    [cd, end] = await read_msgs(reader, 2)
    assert cd[:3] == ["10", "8", "42"] and end == ["52", "1", "42"]
    writer.close()


async def test_fragmented_and_coalesced_frames(sim: Simulator) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    data = b"API\0" + frame_raw(["v157..178"])
    for i in range(len(data)):  # one byte at a time
        writer.write(data[i:i + 1])
        await writer.drain()
    await read_msgs(reader, 1)
    writer.write(frame([71, 2, 6, ""]) + frame([49, 1]) + frame([49, 1]))
    await writer.drain()
    msgs = await read_msgs(reader, 7)
    assert sum(1 for m in msgs if m[0] == "49") == 2
    writer.close()


async def test_unknown_message_is_ignored_and_connection_survives(sim: Simulator) -> None:
    reader, writer = await handshake(sim, "v157..178")
    await read_msgs(reader, 1)
    writer.write(frame([71, 2, 8, ""]))
    await read_msgs(reader, 5)
    writer.write(frame([999, 1, 2, 3]) + frame([49, 1]))
    await writer.drain()
    [msg] = await read_msgs(reader, 1)
    assert msg[0] == "49"
    assert sim.state()["stats"]["requests"]["unknown_999"] == 1
    writer.close()


def test_field_formatting() -> None:
    assert fmt(None) == "" and fmt(True) == "1" and fmt(False) == "0"
    assert fmt(1.7976931348623157e308) == "" and fmt(2**31 - 1) == ""
    assert fmt(150.0) == "150" and fmt(0.25) == "0.25"
    assert frame([1, "a"]) == struct.pack(">I", 4) + b"1\0a\0"
    assert parse_version_range("v157..178 +PACEAPI") == (157, 178, "+PACEAPI")
    with pytest.raises(ValueError):
        parse_version_range("157")
