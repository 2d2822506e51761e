"""The generator of the synthetic monthly climate: the deterministic model and one run's random streams.

For every additive state channel c (all but pr, hus, ps, tdas) and month t:

    c(t, x) = clim_c(month, x) + trend_c(x) y(t) / 10 + beta_c(x) N(t) + gamma_c(x) dT
              + nao_c(x) a(t) + sigma_c(x) xi_c(t, x)

  * y(t): years since 2000-01; N(t): relative Nino-3.4 index computed from the tos written
    (:func:`.forcing.nino34_relative`, anomaly w.r.t. the deterministic climatology);
  * dT: the scenario's uniform SST offset (0 / 2 / 4 K);
  * trend_c and gamma_c are independent maps by default (dT = 0 in every historical month, so
    historical data never carry gamma_c); with ``Model.build(..., forced_trend=True)``
    (``md-synth --forced-trend``) trend_c = gamma_c x 0.15 K/decade (the tropical SST trend), i.e.
    the forced term is gamma_c (0.15 y/10 + dT): one response to the tropical SST warming;
  * a(t): NAO amplitude, one N(0, 1) value per winter (Dec of year Y-1, Jan and Feb of Y share it),
    zero outside DJF; nonzero nao_c only for zg500 and psl;
  * xi_c: unit-variance isotropic noise with spherical-harmonic power P(l) ~ l^slope and AR(1)
    lag-1 coefficient phi_c (:mod:`.spectral_noise`), independent of N, a and between members.
    Levels of one 3-D variable share half their noise variance (a column mode), zg500 and psl
    share 36 %, ts shares 81 % with tas: mixing unit-variance fields of equal phi and spectrum
    keeps both.

Positive channels (pr, hus at every level) are multiplicative so they stay > 0 while the planted
regressions stay linear in expectation:

    c(t, x) = clim_c(month, x) * max(1 + r_trend y/10 + r_beta N + r_gamma dT, 0.05)
              * exp(sigma_c xi_c - sigma_c^2 / 2)

With E[exp(sigma xi - sigma^2/2)] = 1 and xi independent of N, the least-squares slope of c on N
(anomalies w.r.t. the monthly climatology) is r_beta * clim_c averaged over calendar months, the
slope on time is r_trend * mean clim_c, and (p2k - historical) / 2 has expectation
r_gamma * mean clim_c. The floor 0.05 is never reached for |N| < 3.5 K (|r_beta| <= 0.25 K-1);
with the ENSO asymmetry below, for N < 3.1 K (3.8 std of N; r_beta >= -0.233).
ps = psl exp(-orog / 8000 m); tdas = tas - D(month, x) exp(0.2 xi_d - 0.02) (positive depression).

Planted nonlinearity (``nonlinear=True``, the default; constants in :mod:`.patterns`):

  * ENSO asymmetry: N in every ENSO term above is replaced by N + A (|N| - E|N|), A = 0.4, so the
    response is (1 + A) beta N for El Nino and (1 - A) beta N for La Nina; N is Gaussian with zero
    mean, so cov(|N|, N) = 0 and the least-squares slope on N is still beta (exact in expectation);
    E|N| = sqrt(2/pi) std(N) is computed exactly (:func:`.forcing.nino34_std`), so the term has mean 0;
  * Clausius-Clapeyron-like moisture: pr and hus<lev> get the extra factor
    exp(cc T' - cc^2 s_T^2 / 2), cc = 0.07 K-1, T' = s_T xi_T the noise (weather) part of tas (pr)
    or ta<lev> (hus<lev>); xi_T is independent of the channel's own noise and of N, so the factor
    has mean 1 and the mean, trend, ENSO and warming maps stay exact;
  * state-dependent NAO: a(t) = z_winter x s(month) x g(phase), s = 0.8 / 1.2 / 1.0 in Dec / Jan /
    Feb (mean 1), g^2 = 1.5 if N < 0 in the winter's first DJF month of the run (La Nina), 0.5
    otherwise (equally likely: E g^2 = 1), so the DJF-mean NAO has unit variance in expectation and
    the planted DJF-mean patterns and EOF truth are unchanged.

``nonlinear=False`` gives the linear-Gaussian climate (bit-identical to diagnostics.synth 0.9).

Generation runs in chunks of 12 months. Every noise base has its own random stream per
(seed, member, chunk); a first pass advances the AR(1) coefficient states through all chunks
(cheap, spectral space only), then each (variable, member, chunk) block is an independent pure
function of those, computed by the same code in memory or as one dask task per block, so large
grids stream to zarr in bounded memory and both paths are bit-identical. Same seed -> same data.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
from tqdm.auto import tqdm

from ..data import catalogue
from ..data.grid import Grid
from ..data.timeaxis import Month
from . import patterns
from .climatology import SCALE_HEIGHT, climatology
from .forcing import Forcing, make_forcing, nino34_std
from .spectral_noise import SphericalNoise
from .statics import Statics, make_statics

CHUNK_MONTHS = 12
FACTOR_FLOOR = 0.05
MULTIPLICATIVE = ("pr", "hus")

_STREAM_FORCING, _STREAM_CHUNK, _STREAM_NAO, _STREAM_START = 0, 1, 2, 3


def _rng(seed: int, *key: int) -> np.random.Generator:
    """Independent, reproducible stream for (seed, purpose, member, chunk)."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in key)))


def channel_labels() -> list[str]:
    """Labels of the 37 state channels in catalogue order (``ps``, ..., ``ta1000``, ..., ``zg500``)."""
    return [catalogue.channel_label(n, lev) for n, lev in catalogue.channels()]


def _variable_of(label: str) -> str:
    for name, lev in catalogue.channels():
        if catalogue.channel_label(name, lev) == label:
            return name  # the store name: "ta", "zg500"
    raise KeyError(label)


@dataclass
class Model:
    """Everything deterministic about the synthetic climate on one grid."""

    grid: Grid
    slope: float
    statics: Statics
    clim: dict[str, np.ndarray]
    maps: dict[str, dict[str, np.ndarray]]
    noise: SphericalNoise
    labels: list[str] = field(default_factory=channel_labels)
    forced_trend: bool = False  # trend_c = gamma_c x the tropical SST trend (patterns.planted)

    def __post_init__(self) -> None:
        c = len(self.labels)
        shape = (c, *self.grid.shape)

        def stack(kind: str) -> np.ndarray:
            out = np.zeros(shape)
            for i, lab in enumerate(self.labels):
                if lab in self.maps[kind]:
                    out[i] = self.maps[kind][lab]
            return out

        self.beta, self.trend, self.warming = stack("enso"), stack("trend"), stack("warming")
        self.nao, self.sigma = stack("nao"), stack("sigma")
        self.clim32 = np.stack([self.clim[lab] for lab in self.labels], axis=1).astype(np.float32)  # (12, C, ny, nx)
        self.mult = np.array([_variable_of(lab) in MULTIPLICATIVE for lab in self.labels])
        self.nao_index = set(np.flatnonzero(np.any(self.nao != 0, axis=(1, 2))).tolist())
        for name in ("beta", "trend", "warming", "nao", "sigma"):
            setattr(self, f"{name}32", getattr(self, name).astype(np.float32))
        self.ps_factor32 = np.exp(-self.statics.orog / SCALE_HEIGHT).astype(np.float32)
        self.channels_of = {v: [i for i, lab in enumerate(self.labels) if _variable_of(lab) == v]
                            for v in dict.fromkeys(map(_variable_of, self.labels))}
        self.i_ps, self.i_psl = self.labels.index("ps"), self.labels.index("psl")
        self.i_tas, self.i_tdas = self.labels.index("tas"), self.labels.index("tdas")
        # the temperature whose weather scales each positive channel (Clausius-Clapeyron-like)
        self.cc_row = np.array([self.labels.index("ta" + lab[3:]) if lab.startswith("hus") else self.i_tas
                                for lab in self.labels])
        self._build_mixing()

    def _build_mixing(self) -> None:
        """Noise rows (37 channels + dewpoint depression) as unit-norm mixes of AR(1) bases."""
        bases: list[tuple[str, float]] = []

        def base(name: str, phi: float) -> int:
            bases.append((name, phi))
            return len(bases) - 1

        rows: list[dict[int, float]] = []
        shared: dict[str, int] = {}
        for lab in self.labels:
            var = _variable_of(lab)
            phi = patterns.LAG1[var]
            if lab in ("ps", "tdas"):
                rows.append({})
                continue
            own = base(lab, phi)
            if catalogue.variable(var).is_3d:
                key = f"{var}_column"
                shared.setdefault(key, base(key, phi))
                rows.append({shared[key]: np.sqrt(0.5), own: np.sqrt(0.5)})
            elif lab in ("psl", "zg500"):
                shared.setdefault("dynamics", base("dynamics", phi))
                rows.append({shared["dynamics"]: 0.6, own: 0.8})
            elif lab == "ts":
                rows.append({own: np.sqrt(0.19)})
            else:
                rows.append({own: 1.0})
            if lab == "tas":
                shared["tas"] = own
        rows[self.labels.index("ts")][shared["tas"]] = 0.9
        rows.append({base("dewpoint_depression", patterns.LAG1["tas"]): 1.0})
        self.base_names = [b[0] for b in bases]
        self.phi = np.array([b[1] for b in bases])
        self.mixing = np.zeros((len(rows), len(bases)))
        for r, mix in enumerate(rows):
            for b, w in mix.items():
                self.mixing[r, b] = w

    @classmethod
    def build(cls, grid: Grid, slope: float = patterns.SPECTRAL_SLOPE, forced_trend: bool = False) -> "Model":
        """The model on ``grid``; ``forced_trend``: the atmosphere's trend is its forced response to
        the SST warming (:func:`.patterns.planted`), off by default."""
        st = make_statics(grid)
        return cls(grid=grid, slope=slope, statics=st, clim=climatology(st),
                   maps=patterns.planted(st, forced_trend), noise=SphericalNoise(grid, slope),
                   forced_trend=forced_trend)

    @functools.cached_property
    def nino34_abs_mean(self) -> float:
        """E|N| = sqrt(2 / pi) std(N) (K): N is Gaussian with zero mean (:func:`.forcing.nino34_std`)."""
        return float(np.sqrt(2.0 / np.pi) * nino34_std(self.statics, self.slope))

    def lag1(self, label: str) -> float:
        """Planted lag-1 autocorrelation of a channel's noise."""
        return float(self.phi[np.flatnonzero(self.mixing[self.labels.index(label)])[0]])


@dataclass
class Run:
    """One scenario realisation: model, time axis, forcing and per-member random streams."""

    model: Model
    months: np.ndarray  # month indices
    seed: int
    members: int
    sst_offset: float
    forcing: Forcing
    nao_amplitude: np.ndarray  # (members, time), 0 outside DJF
    states: list[list[np.ndarray]]  # [member][chunk] AR(1) start state (bases, ncoef)
    nonlinear: bool = True  # planted ENSO asymmetry, Clausius-Clapeyron scaling, state-dependent NAO
    on_chunk: Callable[[], object] | None = None  # progress hook, called per variable and chunk

    @property
    def chunks(self) -> list[slice]:
        n = self.months.size
        return [slice(i, min(i + CHUNK_MONTHS, n)) for i in range(0, n, CHUNK_MONTHS)]

    def _eps(self, member: int, k: int, bases: list[int] | np.ndarray) -> np.ndarray:
        """Unit innovations (time, len(bases), ncoef) of chunk ``k``: one stream per noise base, so
        a variable draws only the bases it mixes and every path sees the same numbers."""
        sl = self.chunks[k]
        shape = (sl.stop - sl.start, self.model.noise.ncoef)
        return np.stack([_rng(self.seed, _STREAM_CHUNK, member, k, b).standard_normal(shape) for b in bases], axis=1)

    def spectral_state(self, member: int, k: int, bases: list[int] | np.ndarray) -> np.ndarray:
        """Standardised AR(1) coefficients (time, len(bases), ncoef) of some noise bases in chunk ``k``.

        Rows evolve independently, so any subset reproduces the full recursion bit for bit.
        """
        bases = np.asarray(bases)
        return self.model.noise.ar1(self._eps(member, k, bases), self.model.phi[bases], self.states[member][k][bases])

    def _noise(self, member: int, k: int, rows: list[int]) -> np.ndarray:
        """Unit noise fields (time, len(rows), ny, nx) of the given mixing rows."""
        mix = self.model.mixing[rows]
        bases = np.flatnonzero(np.any(mix != 0, axis=0))
        x = self.spectral_state(member, k, bases)
        return self.model.noise.synthesize(np.einsum("rb,tbk->trk", mix[:, bases], x))

    def _channels(self, member: int, k: int, idx: list[int]) -> np.ndarray:
        """Channels ``idx`` (time, len(idx), ny, nx) float32 of chunk ``k`` (see the module formulas)."""
        m, sl = self.model, self.chunks[k]
        f32 = np.float32
        xi = self._noise(member, k, idx).astype(f32)
        moy = self.months[sl] % 12
        y10 = (self.forcing.years[sl] / 10.0).astype(f32)[:, None, None, None]
        n34 = self.forcing.nino34[sl]
        if self.nonlinear:  # El Nino responses (1 + A) beta, La Nina (1 - A) beta; mean-free since E|N| is removed
            n34 = n34 + patterns.ENSO_ASYMMETRY * (np.abs(n34) - m.nino34_abs_mean)
        n34 = n34.astype(f32)[:, None, None, None]
        a = self.nao_amplitude[member, sl].astype(f32)[:, None, None]
        # float32 arithmetic (the output precision) keeps a 1.5-degree chunk fast and small.
        drivers = m.trend32[idx][None] * y10
        drivers += m.beta32[idx][None] * n34
        if self.sst_offset:
            drivers += m.warming32[idx][None] * f32(self.sst_offset)
        sigma = m.sigma32[idx]
        noise = sigma[None] * xi
        clim = m.clim32[np.ix_(moy, idx)]
        if m.mult[idx[0]]:  # a variable's channels are all additive or all multiplicative
            log_var = sigma**2
            if self.nonlinear:  # x exp(CC T' - CC^2 s_T^2 / 2): T' independent of the own noise, mean factor 1
                rows = m.cc_row[idx].tolist()
                cc_std = f32(patterns.CC_RATE) * m.sigma32[rows]
                noise = noise + cc_std[None] * self._noise(member, k, rows).astype(f32)
                log_var = log_var + cc_std**2
            return clim * np.maximum(1 + drivers, f32(FACTOR_FLOOR)) * np.exp(noise - f32(0.5) * log_var)
        out = clim + drivers + noise
        for j, i in enumerate(idx):
            if i in m.nao_index:
                out[:, j] += m.nao32[i] * a
        return out

    def variable_chunk(self, member: int, k: int, store: str) -> np.ndarray:
        """One variable's values in chunk ``k``: (time, [plev,] ny, nx) float32 (a pure function)."""
        m = self.model
        if store == "ps":
            out = self._channels(member, k, [m.i_psl])[:, 0] * m.ps_factor32
        elif store == "tdas":
            tas = self._channels(member, k, [m.i_tas])[:, 0]
            s = patterns.DEPRESSION_LOG_STD
            moy = self.months[self.chunks[k]] % 12
            xi = self._noise(member, k, [len(m.labels)])[:, 0]
            out = tas - (m.clim["dewpoint_depression"][moy] * np.exp(s * xi - 0.5 * s**2)).astype(np.float32)
        else:
            idx = m.channels_of[store]
            out = self._channels(member, k, idx)
            out = out if catalogue.variable(store).is_3d else out[:, 0]
        if self.on_chunk is not None:
            self.on_chunk()
        return out


def _nao_amplitudes(seed: int, member: int, months: np.ndarray) -> np.ndarray:
    year, month = months // 12, months % 12 + 1
    winter = year + (month == 12)  # DJF of winter Y = Dec Y-1, Jan Y, Feb Y
    first = int(winter.min())
    draws = _rng(seed, _STREAM_NAO, member).standard_normal(int(winter.max()) - first + 1)
    return np.where(np.isin(month, (12, 1, 2)), draws[winter - first], 0.0)


def nao_state_scale(months: np.ndarray, nino34: np.ndarray) -> np.ndarray:
    """Factor (time,) of the planted state-dependent NAO: 0 outside DJF, else
    NAO_MONTH_SCALE[month] x sqrt(NAO_PHASE_VARIANCE[phase]), phase = La Nina if N < 0 in the
    winter's first DJF month of the run (normally its December), else El Nino.

    The month scales average 1 over DJF and the phases are equally likely (N is symmetric), so the
    DJF-mean amplitude keeps unit variance in expectation and the DJF-mean truth is unchanged.
    """
    year, month = months // 12, months % 12 + 1
    winter = year + (month == 12)
    djf = np.isin(month, tuple(patterns.NAO_MONTH_SCALE))
    scale = np.zeros(months.size)
    for w in np.unique(winter[djf]):
        sel = djf & (winter == w)
        phase = "la_nina" if nino34[np.flatnonzero(sel)[0]] < 0 else "el_nino"
        scale[sel] = np.sqrt(patterns.NAO_PHASE_VARIANCE[phase])
    return scale * np.array([patterns.NAO_MONTH_SCALE.get(int(mo), 0.0) for mo in month])


def make_run(model: Model, start: Month, end: Month, seed: int, members: int = 1, sst_offset: float = 0.0,
             nonlinear: bool = True) -> Run:
    """Forcing, NAO amplitudes and AR(1) chunk start states for one realisation set.

    ``nonlinear=False`` leaves out the planted nonlinearity (the linear-Gaussian climate of
    diagnostics.synth <= 0.9, bit for bit).
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    if members < 1:
        raise ValueError("members must be >= 1")
    months = np.arange(start.index, end.index + 1)
    forcing = make_forcing(model.statics, model.clim["tos_raw"], months, _rng(seed, _STREAM_FORCING),
                           model.slope, sst_offset)
    nao = np.stack([_nao_amplitudes(seed, i, months) for i in range(members)])
    if nonlinear:
        nao = nao * nao_state_scale(months, forcing.nino34)[None]
    run = Run(model, months, seed, members, sst_offset, forcing, nao, [], nonlinear=nonlinear)
    for member in range(members):
        state = _rng(seed, _STREAM_START, member).standard_normal((model.phi.size, model.noise.ncoef))
        states = []
        for k in range(len(run.chunks)):  # first pass: spectral states only, cheap
            states.append(state)
            state = model.noise.ar1(run._eps(member, k, np.arange(model.phi.size)), model.phi, state)[-1]
        run.states.append(states)
    return run


@contextlib.contextmanager
def progress(run: Run, desc: str = "md-synth", enabled: bool = True) -> Iterator[None]:
    """Show a tqdm bar over the generated (variable, chunk) blocks of ``run``, eager or streamed."""
    total = run.members * len(run.chunks) * len(catalogue.STATE_VARIABLES)
    # disable=None: drawn only on a terminal (no redraws in log files)
    with tqdm(total=total, desc=desc, unit="block", leave=False, disable=None if enabled else True) as bar:
        run.on_chunk = lambda: bar.update(1)
        try:
            yield
        finally:
            run.on_chunk = None
