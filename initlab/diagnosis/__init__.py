"""``initlab doctor``: say what is wrong inside a network, why, and what fixes it.

A short probed training (:mod:`~initlab.diagnosis.examine`: 300 updates by default, probes dense at the
start, the probe library plus the doctor's own per-unit hooks), checks with thresholds from the papers,
the mean-field theory or a named rule of thumb (:mod:`~initlab.diagnosis.findings`), fixes from a rules
table (:mod:`~initlab.diagnosis.fixes`), optionally rerun to verify them, and a report
(:mod:`~initlab.diagnosis.report`).

* :func:`doctor` -- any ``nn.Module``: ``initlab.doctor(model, batches, loss_fn, optimizer)``;
* :func:`doctor_config` -- initlab's own configs (``initlab doctor OVERRIDES...``), with the mean-field
  prediction to compare with.
"""

from initlab.diagnosis.report import Report
from initlab.diagnosis.session import doctor, doctor_config

__all__ = ["Report", "doctor", "doctor_config"]
