"""The version of scaleinv: one place, read by the package, the build and generated files.

A leaf module (it imports nothing), so every layer may import it; ``pyproject.toml`` reads it
as the distribution's version.
"""

__version__ = "0.1.0"
