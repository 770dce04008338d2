"""The control room's screens and dialogs."""
