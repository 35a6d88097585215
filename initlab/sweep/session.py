"""What the Hydra callbacks of one ``initlab run`` hand to its task function and to the command.

Hydra builds the callbacks (``hydra.callbacks`` in ``conf/config.yaml``) and calls the task function
itself, so what one learns and the other needs goes through one explicit object, :class:`Session`: the
callbacks and the task use :data:`SESSION`, the process's session, unless they are given another one
(tests give theirs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from initlab.runs.lock import Claim


@dataclass
class Session:
    """The state of one ``initlab run`` (or ``-m``) in this process."""

    claim: Claim | None = None  # a single run's directory, claimed by RunDirCallback for the task
    sweep_dir: Path | None = None  # the sweep between on_multirun_start and on_multirun_end
    swept_keys: set[str] = field(default_factory=set)  # what the running sweep varies
    exit_code: int = 0  # 1 after a multirun in which a job failed
    kept: set[Path] = field(default_factory=set)  # job directories resume kept (not run again)

    def take_claim(self) -> Claim | None:
        """The claimed run directory, handed to the task once (None in a sweep's job)."""
        claimed, self.claim = self.claim, None
        return claimed

    def end(self) -> int:
        """The command is done: give back a directory no task took (Hydra failed before the task ran);
        returns the exit code of the last multirun and resets it."""
        if self.claim is not None:
            self.take_claim().discard()  # type: ignore[union-attr]
        code, self.exit_code = self.exit_code, 0
        return code


SESSION = Session()
