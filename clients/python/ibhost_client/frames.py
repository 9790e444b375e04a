"""Historical answers as pandas DataFrames (columnar JSON or streamed CSV), and the
progress bar drawn while a long download streams in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def _pandas() -> Any:
    """pandas, for the answers that are DataFrames (``pip install ibhost-client[pandas]``);
    the rest of the client does without it."""
    try:
        import pandas
    except ImportError:
        raise ImportError("this answer is a pandas DataFrame: pip install "
                          "'ibhost-client[pandas]' (or pandas)") from None
    return pandas


def bars_frame(result: dict[str, Any]) -> pd.DataFrame:
    """Columnar historical answer -> DataFrame indexed by UTC timestamp."""
    pd = _pandas()
    data = result.get("data", {})
    df = pd.DataFrame({c: data.get(c, []) for c in ("open", "high", "low", "close", "volume")})
    df.index = pd.DatetimeIndex(pd.to_datetime(data.get("timestamp", []), utc=True),
                                name="timestamp")
    return df


def _utc_ts(x: Any) -> pd.Timestamp:
    pd = _pandas()
    t = pd.Timestamp(x)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


class Progress:
    """A one-line progress bar for long downloads (on a terminal, or any stream given).

    The fraction is how far the bars received reach into the requested range: the
    answer streams in time order, so that is how much of the range is done."""

    def __init__(self, out: Any, start: Any, end: Any, width: int = 30) -> None:
        pd = _pandas()
        self.out = out
        t0 = _utc_ts(start) if start is not None else pd.Timestamp(0, tz="UTC")
        t1 = _utc_ts(end) if end is not None else pd.Timestamp.now(tz="UTC")
        self.t0, self.t1 = t0.timestamp(), max(t1.timestamp(), t0.timestamp() + 1)
        self.width = width
        self.rows = 0
        self._shown = -1.0

    def feed(self, lines: list[str]) -> None:
        self.rows += len(lines)
        if lines:
            self.show(_utc_ts(lines[-1].split(",", 1)[0]).timestamp())

    def show(self, t: float, force: bool = False) -> None:
        frac = min(1.0, max(0.0, (t - self.t0) / (self.t1 - self.t0)))
        if not force and frac - self._shown < 0.005:
            return
        self._shown = frac
        done = int(frac * self.width)
        self.out.write(f"\r[{'#' * done}{'.' * (self.width - done)}] {frac:4.0%} "
                       f"{self.rows:,} bars")
        self.out.flush()

    def finish(self) -> None:
        self.show(self.t1, force=True)
        self.out.write("\n")
        self.out.flush()


def _progress_out(progress: Any) -> Any:
    """None: a bar on stderr when it is a terminal; True/False; or a stream to write to."""
    import sys

    if progress is None:
        return sys.stderr if sys.stderr.isatty() else None
    if progress is True:
        return sys.stderr
    return progress or None


def csv_frame(text: str) -> pd.DataFrame:
    """CSV historical answer -> the same DataFrame as ``bars_frame``."""
    pd = _pandas()
    import io

    df = pd.read_csv(io.StringIO(text))
    out = df[["open", "high", "low", "close", "volume"]].copy()
    out.index = pd.DatetimeIndex(pd.to_datetime(df["timestamp"], utc=True), name="timestamp")
    return out


class _CsvLines:
    """Split streamed CSV bytes into complete lines, feeding a progress bar."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.parts: list[str] = []
        self._tail = ""
        self._header = True

    def feed(self, data: bytes) -> None:
        text = self._tail + data.decode()
        *lines, self._tail = text.split("\n")
        self.parts += [ln + "\n" for ln in lines]
        if self._header and lines:
            self._header = False
            lines = lines[1:]
        self.progress.feed([ln for ln in lines if ln])

    def text(self) -> str:
        self.progress.finish()
        return "".join(self.parts) + self._tail
