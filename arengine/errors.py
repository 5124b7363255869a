"""Errors that carry a message meant for a person, not a traceback."""


class UserError(Exception):
    """Bad input from a user: the CLI prints the message on one line and exits with 2."""
