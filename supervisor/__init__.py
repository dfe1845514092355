"""The remote supervisor: runs on the GPU instance, owns a run's attempts, writes state.json.

Standard library only, Python 3.9+. See supervisor/README.md for the CLI and RUN.json keys.
"""

__version__ = "0.1.0"

# Marks the package as sleepwatch's: bot/start.py refuses to run when another distribution
# (`pip install supervisor` installs supervisord under this very name) replaced it.
__distribution__ = "sleepwatch"

# Printed on a line of its own just before every JSON answer: a login shell that echoes a
# banner, `.bashrc` output or `pyenv init` noise first cannot be mistaken for the answer.
# core/supervisor_client.py holds the same text (a contract test keeps them equal).
ANSWER_MARK = "@@sleepwatch-answer-v1@@"
