"""Progress of ``ibhost backfill`` and ``ibhost bench``: what a log line says off a
terminal (stepped clock), and that a terminal gets a tqdm bar with rate and ETA."""

from __future__ import annotations

import io

from ibhost.progress import Progress, interval


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_line_per_step_with_count_rate_and_eta() -> None:
    clock, lines = Clock(), []
    p = Progress(10_000, unit="bar", desc="AAPL_1m.csv", tty=False, emit=lines.append,
                 clock=clock)
    clock.t += 2.0
    p.update(2_000, "chunk 1, up to 2025-11-24T20:59:00+00:00")
    clock.t += 2.0
    p.update(0, "chunk 2, no bars (a closed day)")
    clock.t += 4.0
    p.update(8_000, "chunk 3")
    p.close()
    assert lines == [
        "AAPL_1m.csv: 2,000 of 10,000 bars (20%), 1,000 bars/s, ETA 0:08; chunk 1, up to "
        "2025-11-24T20:59:00+00:00",
        "AAPL_1m.csv: 2,000 of 10,000 bars (20%), 500 bars/s, ETA 0:16; chunk 2, no bars "
        "(a closed day)",
        "AAPL_1m.csv: 10,000 of 10,000 bars (100%), 1,250 bars/s, done in 0:08; chunk 3"]


def test_steps_without_a_rate_say_what_began_and_how_long_it_took() -> None:
    clock, lines = Clock(), []
    p = Progress(7, unit="scenario", desc="ibhost bench", tty=False, emit=lines.append,
                 rate=False, clock=clock)
    p.begin("latency")
    clock.t += 75
    p.update(1, "latency took 75.0s")
    assert lines == ["ibhost bench: latency...",
                     "ibhost bench: 1 of 7 scenarios (14%), 1:15 so far; latency took 75.0s"]


def test_more_than_expected_is_shown_as_all_of_it() -> None:
    lines: list[str] = []
    p = Progress(10, unit="bar", desc="x", tty=False, emit=lines.append, clock=Clock())
    p.update(12)
    assert lines[0].startswith("x: 10 of 10 bars (100%)")


def test_a_terminal_gets_a_bar_with_rate_and_time_left() -> None:
    out, lines = io.StringIO(), []
    p = Progress(1000, unit="bar", desc="AAPL_1m.csv", tty=True, emit=lines.append, out=out)
    p.update(250, "chunk 1")
    p.update(750, "chunk 2")
    p.close()
    text = out.getvalue()
    assert lines == [] and "\r" in text
    assert "AAPL_1m.csv" in text and "100%" in text and "1.00k/1.00k" in text
    assert "bar/s" in text and "<" in text  # the rate, elapsed<remaining


def test_interval() -> None:
    assert [interval(s) for s in (0, 59.6, 75, 3725)] == ["0:00", "1:00", "1:15", "1:02:05"]
