"""A linear inverse model (LIM): the linear stochastic baseline of the emulator (issue 13).

Area-weighted EOFs of the normalised state anomalies, forced by the SST / sea-ice anomalies,
``x_{t+1} = A x_t + B u_{t+1} + c_m + eps``, ``eps ~ N(0, Q_m)`` with the full residual
covariance, fitted by least squares on the training years (:mod:`.operator`, :mod:`.model`),
trained with ``emulator-train --config configs/lim.yaml`` and run with ``emulator-run`` like the
neural emulator (:mod:`.rollout`). numpy only; see docs/emulator.md, "LIM baseline".
"""
