"""One exception type for everything a user can fix. The CLI prints it as one line."""


class MlxLcError(Exception):
    """Bad input: missing or corrupt files, wrong shapes, unknown names. Message is one line."""
