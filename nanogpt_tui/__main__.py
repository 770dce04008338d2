"""Allow `python -m nanogpt_tui`."""

from nanogpt_tui.cli import main

raise SystemExit(main())
