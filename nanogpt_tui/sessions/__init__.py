"""Sessions: the session model, its layout on disk, budgets, and the runner that lives inside a session."""
