"""Residual ensembles around a conditioning run (arXiv 2407.02070): a latent diffusion model of
``r = z - z_c``, the latent of a member minus the latent of the conditioning trajectory, stepped
monthly and decoded through a frozen Monthly Diffusion encoder/decoder. See docs/residual.md."""
