"""The numerical core of the linear inverse model (numpy only, no grids, no files).

Notation (all float64):

* ``y_t in R^P``: the normalised, area-weighted anomaly vector of month t (see :mod:`.model`),
* EOFs: ``Y = U S V^T`` (the T x P training matrix), ``E = V[:, :K]``; PCs ``x_t = E^T y_t``,
* forcing predictors ``u_t in R^M`` (leading PCs of the forcing anomalies and the global-mean
  SST anomaly, each standardised on the training months),
* the model, fitted on consecutive training pairs (t, t+1)::

      x_{t+1} = A x_t + B u_{t+1} + c_{m(t+1)} + eps_{t+1},   eps ~ N(0, Q_{m(t+1)})

  with ``c_m`` one intercept per calendar month (the monthly mean the anomalies keep after the
  climatology, persistence and forcing are accounted for) and ``Q`` the full residual covariance,
  constant or, with ``noise="seasonal"``, one per calendar month estimated from the residuals of
  the target months m-1, m, m+1 (the NAO's variance lives in winter). Sampling uses the Cholesky
  factor ``L L^T = Q``: ``eps = L eta``, ``eta ~ N(0, I)``.

* optionally (``seasonal_ridge``, a cyclostationary LIM) the persistence depends on the month
  predicted, ``A_m = A + dA_m``: ``dA_m`` is the ridge regression of the stationary fit's residuals
  of the pairs with target month m (about one per training year) on ``x_t``,
  ``dA_m^T = (X_m^T X_m + lambda_s n_m sbar I)^-1 X_m^T R_m`` with ``sbar`` the mean PC variance,
  so the penalty shrinks dA_m towards the stationary A, not towards zero (a winter-long
  NAO needs A_Jan ~ 1 on its mode but A_Dec ~ 0). Q is then estimated from the leave-one-out
  residuals of these regressions, ``r_i / (1 - h_ii)`` with ``h`` the ridge hat matrix.

Least squares with a small ridge ``lambda`` on the (standardised) regressors ``z_t = [x_t,
u_{t+1}, onehot(m(t+1))]``: ``W = (Z^T Z + lambda N I)^{-1} Z^T X1``. The residual covariance
uses the unbiased divisor ``N - p`` (p regressors).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NOISE_KINDS = ("constant", "seasonal")


def leading_eofs(y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` leading EOFs ``[P, k]`` (orthonormal columns) and singular values ``[k]`` of ``y [T, P]``.

    From the smaller of the two Gram matrices: ``Y Y^T = U S^2 U^T`` (T x T, the usual case
    T << P), then ``V = Y^T U S^-1``; or ``Y^T Y = V S^2 V^T`` (P x P) when P < T. Modes with
    ``s < 1e-10 s_0`` (no variance) are dropped. Signs are fixed so that each EOF's
    largest-magnitude element is positive (only to make checkpoints reproducible).
    """
    y = np.asarray(y, np.float64)
    small_t = y.shape[0] <= y.shape[1]
    vals, vecs = np.linalg.eigh(y @ y.T if small_t else y.T @ y)
    order = np.argsort(vals)[::-1][:k]
    s = np.sqrt(np.clip(vals[order], 0.0, None))
    keep = s > (s[0] if s.size else 0.0) * 1e-10
    s, vecs = s[keep], vecs[:, order][:, keep]
    e = (y.T @ vecs) / s if small_t else vecs
    e = e / np.linalg.norm(e, axis=0)
    sign = np.sign(e[np.abs(e).argmax(axis=0), np.arange(e.shape[1])])
    return e * np.where(sign == 0, 1.0, sign), s


@dataclass(frozen=True)
class LinearOperator:
    """``x_{t+1} = A x_t + B u_{t+1} + c_{m(t+1)} + L_{m(t+1)} eta``; arrays float64.

    ``A [K, K]``, ``B [K, M]``, ``c [12, K]`` (calendar month 1..12 at row m-1),
    ``chol [12, K, K]`` lower-triangular Cholesky factors of ``Q_m`` (all 12 equal for constant noise),
    ``dA [12, K, K]`` the seasonal corrections of A (zeros for a stationary LIM).
    """

    A: np.ndarray
    B: np.ndarray
    c: np.ndarray
    chol: np.ndarray
    dA: np.ndarray

    @property
    def modes(self) -> int:
        return self.A.shape[0]

    @property
    def covariance(self) -> np.ndarray:
        """``Q [12, K, K] = L L^T``."""
        return self.chol @ np.swapaxes(self.chol, -1, -2)

    def spectral_radius(self) -> float:
        """Per-month growth: 12th root of the spectral radius of the annual propagator
        ``A_12 ... A_1`` (for a stationary LIM the spectral radius of A)."""
        prop = np.eye(self.modes)
        for m in range(12):
            prop = (self.A + self.dA[m]) @ prop
        return float(np.abs(np.linalg.eigvals(prop)).max() ** (1.0 / 12.0))

    def mean_step(self, x: np.ndarray, u_next: np.ndarray, month_next: int) -> np.ndarray:
        """Deterministic part ``A_m x + B u + c_m`` for ``x [..., K]``, ``u_next [M]``."""
        return x @ (self.A + self.dA[month_next - 1]).T + self.B @ u_next + self.c[month_next - 1]

    def noise(self, eta: np.ndarray, month_next: int) -> np.ndarray:
        """``L_m eta`` for unit normal ``eta [..., K]``."""
        return eta @ self.chol[month_next - 1].T


def _cholesky(q: np.ndarray) -> np.ndarray:
    """Cholesky factor of a symmetric PSD matrix, with eigenvalues floored at 1e-12 * trace."""
    q = 0.5 * (q + q.T)
    try:
        return np.linalg.cholesky(q)
    except np.linalg.LinAlgError:
        vals, vecs = np.linalg.eigh(q)
        vals = np.clip(vals, 1e-12 * max(float(np.trace(q)), 1e-300), None)
        return np.linalg.cholesky((vecs * vals) @ vecs.T)


def fit_operator(x: np.ndarray, u: np.ndarray, month: np.ndarray, pairs: np.ndarray, *,
                 noise: str = "seasonal", ridge: float = 1e-6,
                 seasonal_ridge: float | None = None) -> LinearOperator:
    """Least-squares fit of :class:`LinearOperator` on the pairs (t, t+1) for t in ``pairs``.

    Args:
        x: PCs ``[T, K]``.
        u: forcing predictors ``[T, M]`` (M may be 0).
        month: calendar month 1..12 of each time ``[T]``.
        pairs: indices t whose successor t+1 is the next month of the same record.
        noise: ``constant`` (one Q) or ``seasonal`` (Q_m from the target months m-1..m+1).
        ridge: ``lambda`` relative to the number of pairs (the regressors are O(1)); it keeps
            the normal equations well posed when a forcing predictor is nearly collinear.
        seasonal_ridge: ``lambda_s`` of the per-month corrections dA_m; None: stationary A.
    """
    if noise not in NOISE_KINDS:
        raise ValueError(f"noise must be one of {NOISE_KINDS}, got {noise!r}")
    x, u = np.asarray(x, np.float64), np.asarray(u, np.float64).reshape(len(x), -1)
    k, m_forcing = x.shape[1], u.shape[1]
    t1 = pairs + 1
    target_month = np.asarray(month)[t1]
    onehot = np.zeros((pairs.size, 12))
    onehot[np.arange(pairs.size), target_month - 1] = 1.0
    z = np.concatenate([x[pairs], u[t1], onehot], axis=1)
    n, p = z.shape
    if n <= p:
        raise ValueError(f"{n} training pairs cannot fit {p} regressors per mode; use fewer modes")
    missing = sorted(set(range(1, 13)) - set(target_month.tolist()))
    if missing:
        raise ValueError(f"the training pairs lack calendar month(s) {missing}")
    gram = z.T @ z + ridge * n * np.diag(np.r_[np.ones(k + m_forcing), np.zeros(12)])
    w = np.linalg.solve(gram, z.T @ x[t1])  # [p, K]
    resid = x[t1] - z @ w
    d_a = np.zeros((12, k, k))
    if seasonal_ridge is not None:
        xs = x[pairs]
        sbar = float(np.mean(xs ** 2))
        for m in range(1, 13):
            sel = target_month == m
            xm = xs[sel]
            inv = np.linalg.inv(xm.T @ xm + seasonal_ridge * sel.sum() * sbar * np.eye(k))
            d_a[m - 1] = (inv @ xm.T @ resid[sel]).T
            # leave-one-out residuals of the ridge fit, r_i / (1 - h_ii) (exact for ridge): the
            # in-sample ones would understate the noise of ~K regressors fitted on ~30 pairs
            hat = np.einsum("ij,jk,ik->i", xm, inv, xm)
            resid[sel] = (resid[sel] - xm @ d_a[m - 1].T) / (1.0 - hat)[:, None]
    scale = n / (n - p)  # unbiased: the residuals have n - p degrees of freedom
    if noise == "constant":
        chol = np.broadcast_to(_cholesky(resid.T @ resid / n * scale), (12, k, k)).copy()
    else:
        chol = np.empty((12, k, k))
        for m in range(1, 13):
            near = np.isin(target_month, [(m - 2) % 12 + 1, m, m % 12 + 1])
            r = resid[near]
            chol[m - 1] = _cholesky(r.T @ r / len(r) * scale)
    return LinearOperator(A=w[:k].T.copy(), B=w[k:k + m_forcing].T.copy(), c=w[k + m_forcing:].copy(), chol=chol,
                          dA=d_a)
