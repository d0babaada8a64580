"""torchlab's version, written once: the package, pyproject.toml (dynamic) and every checkpoint read it here."""

__version__ = "0.1.0"
