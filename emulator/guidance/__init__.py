"""Guided posterior sampling with a frozen emulator (WIND-style inverse problems, issue 15).

:mod:`.operators` observation operators A, :mod:`.sampler` DPS / MMPS on the v-prediction
samplers, :mod:`.stepper` the guided :class:`~emulator.stepper.Stepper`, :mod:`.cli` the
``--guide`` option of ``emulator-run``. See docs/guidance.md.
"""

#: The guidance methods (one home: the sampler and the ``--guide-method`` choices).
METHODS: tuple[str, ...] = ("mmps", "dps")
