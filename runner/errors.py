"""The one error type that means "the user's input is wrong": caught once, in main."""


class UserError(Exception):
    """Bad input (file, key or path, what was expected). main() prints it and exits with `exit_code`."""

    exit_code = 2
