"""The data contract shared by every package: catalogue, grids, time axis, validation."""
