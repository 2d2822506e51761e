"""Monthly time axes in any cftime calendar, with bounds, and period parsing.

Contract: ``time`` holds cftime datetimes at the middle of each month (CMIP monthly
convention), ``time_bnds`` (time, bnds) the first instants of the month and of the next
month, and every month appears once in order. Datasets in different calendars are
aligned by their month index ``year * 12 + month - 1``, never by timestamps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cftime
import numpy as np
import xarray as xr

DEFAULT_CALENDAR = "proleptic_gregorian"
TIME_UNITS = "days since 1850-01-01 00:00:00"

_MONTH_RE = re.compile(r"^(\d{4})-?(\d{2})$")


@dataclass(frozen=True, order=True)
class Month:
    """A calendar month, ordered; ``index`` counts months since year 0."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> "Month":
        """Parse ``YYYY-MM`` or ``YYYYMM``."""
        m = _MONTH_RE.match(str(text).strip())
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise ValueError(f"expected a month as YYYY-MM, got {text!r}")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def from_index(cls, index: int) -> "Month":
        return cls(index // 12, index % 12 + 1)

    @property
    def index(self) -> int:
        return self.year * 12 + self.month - 1

    def __add__(self, months: int) -> "Month":
        return Month.from_index(self.index + months)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def compact(self) -> str:
        """``YYYYMM`` as in AI-MIP file names."""
        return f"{self.year:04d}{self.month:02d}"


@dataclass(frozen=True)
class Period:
    """An inclusive range of months, e.g. ``Period.parse("1979-01:2014-12")``."""

    start: Month
    end: Month

    @classmethod
    def parse(cls, text: str) -> "Period":
        parts = str(text).split(":")
        if len(parts) != 2:
            raise ValueError(f"expected a period as YYYY-MM:YYYY-MM, got {text!r}")
        period = cls(Month.parse(parts[0]), Month.parse(parts[1]))
        if period.end < period.start:
            raise ValueError(f"period {text!r} ends before it starts")
        return period

    def __len__(self) -> int:
        return self.end.index - self.start.index + 1

    def __str__(self) -> str:
        return f"{self.start}:{self.end}"

    def months(self) -> list[Month]:
        return [Month.from_index(i) for i in range(self.start.index, self.end.index + 1)]


def monthly_axis(start: Month, end: Month, calendar: str = DEFAULT_CALENDAR) -> xr.Dataset:
    """A contract time axis: mid-month ``time`` and ``time_bnds`` for start..end inclusive."""
    months = Period(start, end).months()
    lower = [cftime.datetime(m.year, m.month, 1, calendar=calendar) for m in months]
    nxt = months[-1] + 1
    upper = lower[1:] + [cftime.datetime(nxt.year, nxt.month, 1, calendar=calendar)]
    mid = [lo + (up - lo) / 2 for lo, up in zip(lower, upper)]
    time = xr.DataArray(np.array(mid, dtype=object), dims="time",
                        attrs={"standard_name": "time", "long_name": "time", "axis": "T",
                               "bounds": "time_bnds"})
    bnds = xr.DataArray(np.array([lower, upper], dtype=object).T, dims=("time", "bnds"))
    return xr.Dataset(coords={"time": time}, data_vars={"time_bnds": bnds})


def month_index(time: xr.DataArray | np.ndarray) -> np.ndarray:
    """Month index ``year * 12 + month - 1`` of each time value (any calendar, datetime64 too)."""
    values = np.asarray(time.values if isinstance(time, xr.DataArray) else time)
    if np.issubdtype(values.dtype, np.datetime64):
        ym = values.astype("datetime64[M]").astype(int)  # months since 1970-01
        return ym + 1970 * 12
    return np.array([t.year * 12 + t.month - 1 for t in values], dtype=int)


def calendar_of(ds: xr.Dataset | xr.DataArray) -> str:
    """Calendar of the dataset's time axis (``proleptic_gregorian`` for datetime64)."""
    values = ds["time"].values
    if values.size and not np.issubdtype(values.dtype, np.datetime64):
        return values.flat[0].calendar
    return ds["time"].encoding.get("calendar", DEFAULT_CALENDAR)


def period_of(ds: xr.Dataset | xr.DataArray) -> Period:
    """First and last month covered by the dataset."""
    idx = month_index(ds["time"])
    return Period(Month.from_index(int(idx.min())), Month.from_index(int(idx.max())))


def select_period(ds: xr.Dataset, period: Period) -> xr.Dataset:
    """Months of ``period`` present in ``ds`` (by month index, calendar-agnostic)."""
    idx = month_index(ds["time"])
    keep = (idx >= period.start.index) & (idx <= period.end.index)
    return ds.isel(time=np.flatnonzero(keep))


def to_monthly_axis(ds: xr.Dataset, calendar: str | None = None) -> xr.Dataset:
    """Replace any monthly time labels (month start, mid-month, datetime64) by the contract axis.

    Requires exactly one value per month, consecutive; callers validate first.
    """
    idx = month_index(ds["time"])
    cal = calendar or calendar_of(ds)
    axis = monthly_axis(Month.from_index(int(idx[0])), Month.from_index(int(idx[-1])), cal)
    out = ds.drop_vars([v for v in ("time_bnds", "time_bounds") if v in ds.variables])
    out = out.assign_coords(time=axis["time"])
    out["time_bnds"] = axis["time_bnds"]
    out["time"].encoding.update({"units": TIME_UNITS, "calendar": cal})
    return out
