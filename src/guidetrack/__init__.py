"""guidetrack: breath-paced narration tracks from YAML sequence scripts."""

__version__ = "0.1.0"

# Bumped whenever the rendered sound or tags change for the same inputs.
RENDER_VERSION = 1
