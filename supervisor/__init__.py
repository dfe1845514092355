"""The remote supervisor: runs on the GPU instance, owns a run's attempts, writes state.json.

Standard library only, Python 3.9+. See supervisor/README.md for the CLI and RUN.json keys.
"""

__version__ = "0.1.0"

# Printed on a line of its own just before every JSON answer: a login shell that echoes a
# banner, `.bashrc` output or `pyenv init` noise first cannot be mistaken for the answer.
# core/supervisor_client.py holds the same text (a contract test keeps them equal).
ANSWER_MARK = "@@sleepwatch-answer-v1@@"
