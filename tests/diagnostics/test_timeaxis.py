"""Monthly time axes in several calendars, period parsing and month alignment."""

import cftime
import numpy as np
import pytest
import xarray as xr

from diagnostics.data.timeaxis import (Month, Period, month_index, monthly_axis, period_of,
                                       select_period, to_monthly_axis)


@pytest.mark.parametrize("calendar", ["proleptic_gregorian", "noleap", "360_day", "julian"])
def test_monthly_axis_mid_month_with_bounds(calendar):
    ax = monthly_axis(Month(1978, 10), Month(2024, 12), calendar)
    assert ax.sizes["time"] == 555  # the AI-MIP historical run
    lo, up = ax["time_bnds"].values[0]
    assert (lo.year, lo.month, lo.day) == (1978, 10, 1) and (up.month, up.day) == (11, 1)
    t = ax["time"].values[4]  # 1979-02
    assert t.month == 2 and lo.calendar == calendar
    assert np.all(np.diff(month_index(ax["time"])) == 1)


def test_period_parsing_and_errors():
    p = Period.parse("1979-01:2014-12")
    assert len(p) == 36 * 12 and str(p) == "1979-01:2014-12"
    assert Month.parse("201501") == Month(2015, 1)
    for bad in ("1979-13", "1979", "2014-12:1979-01"):
        with pytest.raises(ValueError):
            Period.parse(bad) if ":" in bad else Month.parse(bad)


def test_alignment_across_calendars_by_month_index():
    a = monthly_axis(Month(2000, 1), Month(2000, 12), "noleap")
    b = monthly_axis(Month(2000, 1), Month(2000, 12), "proleptic_gregorian")
    np.testing.assert_array_equal(month_index(a["time"]), month_index(b["time"]))
    dt64 = np.array(["2000-01-01", "2000-02-15"], dtype="datetime64[ns]")
    assert list(month_index(dt64)) == [2000 * 12, 2000 * 12 + 1]


def test_select_and_relabel():
    ax = monthly_axis(Month(1978, 10), Month(1980, 3))
    ds = xr.Dataset({"x": ("time", np.arange(ax.sizes["time"], dtype=float))}, coords=ax.coords)
    sub = select_period(ds, Period.parse("1979-01:1979-12"))
    assert sub.sizes["time"] == 12 and float(sub.x[0]) == 3
    assert period_of(sub) == Period.parse("1979-01:1979-12")
    starts = [cftime.DatetimeNoLeap(1979, m, 1) for m in range(1, 4)]
    relabelled = to_monthly_axis(xr.Dataset(coords={"time": starts}))
    assert relabelled["time"].values[0].day == 16 and "time_bnds" in relabelled
