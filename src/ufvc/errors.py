"""The error hierarchy of ufvc.

Library code raises these; `ufvc.cli` maps each class to an exit code and prints
its message on one line. Messages are written for users: say what is wrong and,
where it helps, what to do.
"""


class UfvcError(Exception):
    """Base class of every error ufvc raises on purpose."""


class InputFormatError(UfvcError, ValueError):
    """An input file or argument is missing, malformed or unsupported."""


class BitstreamError(UfvcError, ValueError):
    """A .ufv file cannot be read."""


class CorruptStreamError(BitstreamError):
    """A .ufv file is truncated or damaged (bad magic, CRC, length)."""


class UnsupportedVersionError(BitstreamError):
    """A .ufv file was written by a newer, incompatible format version."""


class CheckpointError(UfvcError, ValueError):
    """A checkpoint does not fit the model (missing, unexpected or mis-shaped keys)."""


class ModelMismatchError(UfvcError, ValueError):
    """A stream was written with a model other than the one given for decoding."""


class OutputError(UfvcError, OSError):
    """An output file cannot be written."""


class UfvcWarning(UserWarning):
    """Something the user should know that did not stop the command; the CLI prints it as
    one `ufvc: warning:` line."""


class StreamWarning(UfvcWarning):
    """A damaged stream was decoded as far as it goes because the user asked for it."""
