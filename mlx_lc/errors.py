"""One exception type for everything a user can fix. The CLI prints it as one line."""

from __future__ import annotations


class MlxLcError(Exception):
    """Bad input: missing or corrupt files, wrong shapes, unknown names. Message is one line.

    `param` names the Python argument a message is about; the message then starts with that
    name ("max_tokens must be at least 1, got 0"), so that the CLI can put the option's flag in
    its place ("--max-tokens must be at least 1, got 0") without the library knowing the flags.
    `mentions` names arguments the message speaks of further on ("raise max_seq_len or ..."),
    each written as its Python name, which the CLI turns into flags too.
    """

    def __init__(self, message: str, param: str | None = None, mentions: tuple[str, ...] = ()):
        super().__init__(message)
        self.param = param
        self.mentions = tuple(mentions)
