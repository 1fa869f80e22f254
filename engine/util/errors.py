"""User-facing errors of the engine."""


class EngineError(Exception):
    """A failure the user can act on: bad input, missing file, unsupported option.

    The command line prints ``error: <message>`` (or a jsonl ``error`` event), exits with code 2
    and leaves no result file behind.
    """

    exit_code = 2
