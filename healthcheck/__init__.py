"""healthcheck: what is wrong with this GPU container, and what changed."""

__version__ = "0.1.0"
