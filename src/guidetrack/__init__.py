"""guidetrack: breath-paced narration tracks from YAML sequence scripts."""

__version__ = "0.1.0"
