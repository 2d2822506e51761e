"""The one variable catalogue: AI-MIP / CMIP names, units, levels, ERA5 names and transforms.

Every package reads variable facts from here. The in-memory contract uses CMIP short
names; a variable defined on a single pressure level (``zg`` at 500 hPa) is held as a
2-D field named ``<name><hPa>`` (``zg500``) and written to AI-MIP files as ``zg`` with a
one-element ``plev`` axis.

Units of the contract (what readers convert to):
    temperatures K, pressures Pa, winds m s-1, specific humidity kg kg-1,
    precipitation kg m-2 s-1 (time-mean rate), geopotential height m,
    sea-ice and land fractions 1 (0..1), orography m.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

G0 = 9.80665  # standard gravity, m s-2 (WMO); geopotential (m2 s-2) / G0 = height (m)
WATER_DENSITY = 1000.0  # kg m-3; metres of water -> kg m-2

#: The seven pressure levels of the reference model, hPa, surface first.
PLEV_HPA: tuple[int, ...] = (1000, 850, 700, 500, 250, 100, 50)

Kind = Literal["state", "forcing", "static"]
Transform = Literal["none", "sqrt", "logit"]

#: Clamp for the logit transform of fractions (REFERENCE.md section 1).
LOGIT_EPS = 1e-3


@dataclass(frozen=True)
class Variable:
    """One catalogue entry.

    Attributes:
        name: CMIP / AI-MIP short name (file prefix in AI-MIP submissions).
        long_name, standard_name, units: CF attributes written to files.
        kind: ``state`` (predicted), ``forcing`` (prescribed monthly) or ``static``.
        levels: pressure levels in hPa for 3-D fields; ``()`` for single-level fields.
        transform: applied before z-scoring in the emulator (``sqrt``, ``logit`` or ``none``).
        wb2: WeatherBench 2 ERA5 long name.
        cds: ERA5 CDS short names this variable may appear under (netCDF variable names).
        nonnegative: physically >= 0 (validator rejects negatives beyond round-off).
        valid_range: plausible physical range in contract units, used to catch wrong units.
    """

    name: str
    long_name: str
    standard_name: str
    units: str
    kind: Kind
    levels: tuple[int, ...] = ()
    transform: Transform = "none"
    wb2: str = ""
    cds: tuple[str, ...] = ()
    nonnegative: bool = False
    valid_range: tuple[float, float] = (-float("inf"), float("inf"))
    aliases: tuple[str, ...] = field(default=())

    @property
    def is_3d(self) -> bool:
        """True when the field lives on several pressure levels (dim ``plev``)."""
        return len(self.levels) > 1

    @property
    def store_name(self) -> str:
        """Name in the in-memory dataset (``zg500`` for a single-level upper-air field)."""
        return f"{self.name}{self.levels[0]}" if len(self.levels) == 1 else self.name


_T = (150.0, 350.0)
_WIND = (-150.0, 150.0)

VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in [
        # --- predicted surface state (8 channels) ---
        Variable("ps", "Surface Air Pressure", "surface_air_pressure", "Pa", "state",
                 wb2="surface_pressure", cds=("sp",), nonnegative=True, valid_range=(4.0e4, 1.1e5)),
        Variable("ts", "Surface Temperature", "surface_temperature", "K", "state",
                 wb2="skin_temperature", cds=("skt",), valid_range=_T),
        Variable("tas", "Near-Surface Air Temperature", "air_temperature", "K", "state",
                 wb2="2m_temperature", cds=("t2m", "2t"), valid_range=_T),
        Variable("tdas", "2m Dewpoint Temperature", "dew_point_temperature", "K", "state",
                 wb2="2m_dewpoint_temperature", cds=("d2m", "2d"), valid_range=_T),
        Variable("huss", "Near-Surface Specific Humidity", "specific_humidity", "1", "state",
                 transform="sqrt", nonnegative=True, valid_range=(0.0, 0.05)),
        Variable("uas", "Eastward Near-Surface Wind", "eastward_wind", "m s-1", "state",
                 wb2="10m_u_component_of_wind", cds=("u10", "10u"), valid_range=_WIND),
        Variable("vas", "Northward Near-Surface Wind", "northward_wind", "m s-1", "state",
                 wb2="10m_v_component_of_wind", cds=("v10", "10v"), valid_range=_WIND),
        Variable("pr", "Precipitation", "precipitation_flux", "kg m-2 s-1", "state",
                 transform="sqrt", wb2="total_precipitation_6hr", cds=("tp", "mtpr", "avg_tprate"),
                 nonnegative=True, valid_range=(0.0, 5e-3)),
        Variable("psl", "Sea Level Pressure", "air_pressure_at_mean_sea_level", "Pa", "state",
                 wb2="mean_sea_level_pressure", cds=("msl",), nonnegative=True,
                 valid_range=(8.0e4, 1.1e5)),
        # --- predicted upper-air state (4 x 7 + 1 channels) ---
        Variable("ta", "Air Temperature", "air_temperature", "K", "state", PLEV_HPA,
                 wb2="temperature", cds=("t",), valid_range=_T),
        Variable("hus", "Specific Humidity", "specific_humidity", "1", "state", PLEV_HPA,
                 transform="sqrt", wb2="specific_humidity", cds=("q",), nonnegative=True,
                 valid_range=(0.0, 0.05)),
        Variable("ua", "Eastward Wind", "eastward_wind", "m s-1", "state", PLEV_HPA,
                 wb2="u_component_of_wind", cds=("u",), valid_range=_WIND),
        Variable("va", "Northward Wind", "northward_wind", "m s-1", "state", PLEV_HPA,
                 wb2="v_component_of_wind", cds=("v",), valid_range=_WIND),
        Variable("zg", "Geopotential Height", "geopotential_height", "m", "state", (500,),
                 wb2="geopotential", cds=("z",), valid_range=(4000.0, 6500.0)),
        # --- forcings (prescribed each month) ---
        Variable("tos", "Sea Surface Temperature", "sea_surface_temperature", "K", "forcing",
                 wb2="sea_surface_temperature", cds=("sst",), valid_range=(260.0, 315.0),
                 aliases=("sst", "tosbcs")),
        Variable("siconc", "Sea-Ice Area Fraction", "sea_ice_area_fraction", "1", "forcing",
                 transform="logit", wb2="sea_ice_cover", cds=("siconc", "ci"), nonnegative=True,
                 valid_range=(0.0, 1.0), aliases=("sic", "siconcbcs")),
        # --- static fields ---
        Variable("sftlf", "Land Area Fraction", "land_area_fraction", "1", "static",
                 wb2="land_sea_mask", cds=("lsm",), nonnegative=True, valid_range=(0.0, 1.0)),
        Variable("orog", "Surface Altitude", "surface_altitude", "m", "static",
                 wb2="geopotential_at_surface", cds=("z",), valid_range=(-500.0, 9000.0)),
        Variable("sdor", "Standard Deviation of Sub-Grid Orography", "", "m", "static",
                 wb2="standard_deviation_of_orography", cds=("sdor",), nonnegative=True,
                 valid_range=(0.0, 2000.0)),
        Variable("slor", "Slope of Sub-Grid Orography", "", "1", "static",
                 wb2="slope_of_sub_gridscale_orography", cds=("slor",), nonnegative=True,
                 valid_range=(0.0, 1.0)),
    ]
}

#: The predicted variables of the reference model (37 channels with tdas).
STATE_VARIABLES: tuple[str, ...] = ("ps", "ts", "tas", "tdas", "uas", "vas", "pr", "psl",
                                    "ta", "hus", "ua", "va", "zg")
FORCING_VARIABLES: tuple[str, ...] = ("tos", "siconc")
STATIC_VARIABLES: tuple[str, ...] = ("sftlf", "orog", "sdor", "slor")


def variable(name: str) -> Variable:
    """Look up a catalogue entry by CMIP name, store name (``zg500``) or alias (``sst``)."""
    if name in VARIABLES:
        return VARIABLES[name]
    for v in VARIABLES.values():
        if name == v.store_name or name in v.aliases:
            return v
    raise KeyError(f"unknown variable {name!r}; the catalogue has {', '.join(VARIABLES)}")


def channels(names: tuple[str, ...] | list[str] = STATE_VARIABLES) -> list[tuple[str, int | None]]:
    """Expand variables into (store name, level hPa or None) channels, in catalogue order.

    >>> len(channels())
    37
    """
    out: list[tuple[str, int | None]] = []
    for n in names:
        v = variable(n)
        if v.is_3d:
            out.extend((v.store_name, lev) for lev in v.levels)
        else:
            out.append((v.store_name, None))
    return out


def channel_label(name: str, level: int | None) -> str:
    """Human label of a channel: ``ta850``, ``tas``, ``zg500``."""
    return name if level is None else f"{name}{level}"


def store_names(kind: Kind | None = None) -> list[str]:
    """In-memory names of all catalogue variables, optionally of one kind."""
    return [v.store_name for v in VARIABLES.values() if kind is None or v.kind == kind]


def from_era5_name(era5: str) -> Variable | None:
    """The catalogue entry for a WeatherBench 2 long name or CDS short name, if any.

    ``z`` is ambiguous in CDS files (geopotential on levels vs at the surface); callers
    resolve it by whether the field has a level axis.
    """
    for v in VARIABLES.values():
        if era5 == v.wb2 or era5 in v.cds:
            return v
    return None


def cf_attrs(name: str) -> dict[str, str]:
    """CF attributes (units, standard_name, long_name) for a store or CMIP name."""
    v = variable(name)
    attrs = {"units": v.units, "long_name": v.long_name}
    if v.standard_name:
        attrs["standard_name"] = v.standard_name
    return attrs
