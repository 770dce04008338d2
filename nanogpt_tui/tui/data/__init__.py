"""The control room's data layer, free of Textual (and Rich): formatters, session views, the dashboard's caches,
plot data, log tailing, search, line rendering and diffs. The TUI, the CLI and the benchmarks read sessions
through it; `tests/unit/test_import_hygiene.py` proves none of it loads a UI library."""
