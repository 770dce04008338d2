"""The control room's widgets, one module each."""
