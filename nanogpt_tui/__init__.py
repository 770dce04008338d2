"""nanogpt-tui: the terminal control room for NanoGPT-Bench (headless core; the UI lives in `tui/`)."""

__version__ = "0.1.0"
