"""The version, alone in a ground-floor module so that the spec can name it without importing the package."""

__version__ = "0.1.0"
