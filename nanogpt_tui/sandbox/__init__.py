"""The sandbox: what runs at a session's edge (the model gateway, the route fence); the host side is in
`nanogpt_tui.backends.egress`."""
