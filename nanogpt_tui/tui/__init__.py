"""The control room: a Textual app (`app.create_app`) over the headless core; importing this package loads nothing."""
