"""Monthly Diffusion emulator: spectral CVAE + latent v-prediction diffusion (MD-1.5 v0.9 design).

Modules, one building block each: :mod:`.sht` (transforms and grid resampling),
:mod:`.spectral_conv`, :mod:`.conditional_norm`, :mod:`.embeddings`, :mod:`.blocks`,
:mod:`.cvae`, :mod:`.denoiser`, :mod:`.diffusion`, :mod:`.normalisation`, :mod:`.model`;
training in :mod:`.config`, :mod:`.data`, :mod:`.checkpoint`, :mod:`.ema`,
:mod:`.validation`, :mod:`.train`.
"""
