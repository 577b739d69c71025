"""One exception type for bad input; the CLIs turn it into a one-line error and exit 1."""


class SidkitError(Exception):
    """Bad input or state the user can fix; the message names the file and the fix."""
