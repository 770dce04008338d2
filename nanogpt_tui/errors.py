"""The one exception type whose message is shown to the user as-is."""


class UserError(Exception):
    """A failure the user can fix: its message is one sentence saying what went wrong and what to do.

    The CLI prints it without a traceback and exits with status 2; the control room
    shows it as a notification.
    """
