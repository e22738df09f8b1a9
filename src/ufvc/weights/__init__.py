"""Trained weights shipped with ufvc (`.ufvm` files, see `ufvc.models.checkpoint`)."""
