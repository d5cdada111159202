"""microgpt: the complete GPT algorithm in dependency-free Python, and the efficiency ladder above it."""

__version__ = "0.1.0"


class MicroGPTError(Exception):
    """A problem with the user's input: the CLI prints it as one line and exits non-zero."""
