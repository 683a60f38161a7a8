"""Aurora: a self-hosted AIOps engine."""

__version__ = "0.1.0"
