"""User-facing errors.

Every error a user can cause (a bad study file, an unknown task, a corrupt checkpoint, a diverging
run) is an :class:`RnnAutomataError` whose message is one line naming the problem and what to do.
The CLI prints it as ``error: <message>`` and exits with status 2; no traceback.
"""

__all__ = ["RnnAutomataError", "ConfigError", "CheckpointError", "TaskError", "TrainingError"]


class RnnAutomataError(Exception):
    """Base of all user-facing errors; ``str(err)`` is a one-line explanation."""


class ConfigError(RnnAutomataError, ValueError):
    """A study file or override is malformed or names an invalid value."""


class CheckpointError(RnnAutomataError):
    """A checkpoint or run directory is missing, corrupt, or not ours."""


class TaskError(RnnAutomataError, KeyError):
    """An unknown task name or an invalid task definition."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class TrainingError(RnnAutomataError):
    """Training cannot continue (for example the loss became NaN)."""
