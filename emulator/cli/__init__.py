"""Command-line entry points of the emulator."""
