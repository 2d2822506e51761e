"""Monthly Diffusion emulator: spectral CVAE + latent v-prediction diffusion (MD-1.5 v0.9 design).

Modules, one building block each: :mod:`.sht` (transforms and grid resampling),
:mod:`.spectral_conv`, :mod:`.conditional_norm`, :mod:`.embeddings`, :mod:`.blocks`,
:mod:`.cvae`, :mod:`.denoiser`, :mod:`.diffusion`, :mod:`.normalisation`, :mod:`.model`
(the network and its loss); inference in :mod:`.stepper` (the ``Stepper`` protocol the
rollout runs, and ``DiffusionStepper``) and :mod:`.seeding`; training in :mod:`.config`
(typed variants), :mod:`.data`, :mod:`.checkpoint`, :mod:`.ema`, :mod:`.validation`,
:mod:`.train`; the AI-MIP rollout in :mod:`.forcing`, :mod:`.rollout`, :mod:`.run_state`; the LIM baseline in :mod:`.lim`.
"""
