"""The remote supervisor: runs on the GPU instance, owns a run's attempts, writes state.json.

Standard library only, Python 3.9+. See supervisor/README.md for the CLI and RUN.json keys.
"""

__version__ = "0.1.0"
