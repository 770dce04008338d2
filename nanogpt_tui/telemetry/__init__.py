"""What a session is doing and spending, read from its files: live activity, GPU samples, tokens and dollars."""
