"""ufvc: an open, portable implementation of the DCVC-UF neural video codec."""

__version__ = "0.1.0"
