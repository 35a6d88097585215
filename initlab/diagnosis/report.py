"""The doctor's report: :class:`Report`, printed to the terminal and written as ``doctor.md``, ``doctor.json``
and ``doctor.png`` (the findings on the layers, :mod:`initlab.plots.doctor`) into the run directory."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from initlab.runs.write import write_json

REPORT_MD, REPORT_JSON, REPORT_FIGURE = "doctor.md", "doctor.json", "doctor.png"


def _value(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _layers(names: list[str], most: int = 6) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "") if names else "—"


def _fixed(flagged: bool | None, yes: str, no: str) -> str:
    return "not measurable on the rerun" if flagged is None else no if flagged else yes


@dataclass
class Report:
    """What the doctor found. ``findings``: the checks past their threshold; ``passed``: the others;
    ``verified``: one row per fix rerun (``verify=True``); ``notes``: checks left out and why."""

    subject: str
    run_dir: Path
    summary: dict[str, Any]
    findings: list[dict[str, Any]]
    passed: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    verified: list[dict[str, Any]] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "run_dir": str(self.run_dir),
            **self.summary,
            "clean": self.clean,
            "findings": self.findings,
            "passed": self.passed,
            "notes": self.notes,
            "verified": self.verified,
        }

    def markdown(self) -> str:
        s = self.summary
        lines = [f"# initlab doctor: {self.subject}", ""]
        head = "no finding: the net looks healthy" if self.clean else f"{len(self.findings)} finding(s)"
        lines += [
            f"**{head}.** {s['steps_done']} of {s['steps']} updates"
            + (f" (diverged at step {s['diverged_at']})" if s["diverged_at"] is not None else "")
            + f", probed at steps {', '.join(map(str, s['probed']))}; run directory `{self.run_dir}`.",
            "",
        ]
        for i, f in enumerate(self.findings, 1):
            lines += [
                f"## {i}. {f['title']}",
                "",
                f"- **measured**: {_value(f['measured'])} ({f['measure']}): {f['detail']}",
                f"- **threshold**: {f['threshold']} ({f['source']})",
                f"- **layers**: {_layers(f['layers'])}",
            ]
            for fix in f.get("suggested", []):
                how = f" (`{' '.join(fix['overrides'])}`)" if fix.get("overrides") else ""
                lines.append(f"- **fix**: {fix['text']}{how}; {fix['source']}")
            for v in self.verified:
                fixed = _fixed(v["flagged_after"].get(f["key"], True), "fixed", "not fixed")
                lines.append(
                    f"- **rerun with {v['fix']}**: {_value(v['before'][f['key']])} → "
                    f"{_value(v['after'].get(f['key']))}, {fixed}"
                )
            lines.append("")
        if self.passed:
            lines += [
                "## Checks passed",
                "",
                "| check | measured | threshold | source |",
                "|---|---|---|---|",
            ]
            lines += [
                f"| {p['title']} | {_value(p['measured'])} | {p['threshold']} | {p['source']} |"
                for p in self.passed
            ]
            lines.append("")
        if self.verified:
            lines += [
                "## Fixes rerun",
                "",
                "| fix | finding | before | after | fixed |",
                "|---|---|---|---|---|",
            ]
            for v in self.verified:
                for key, before in v["before"].items():
                    fixed = _fixed(v["flagged_after"].get(key, True), "yes", "no")
                    lines.append(
                        f"| {v['fix']} | {key} | {_value(before)} | {_value(v['after'].get(key))} | {fixed} |"
                    )
            lines.append("")
        if self.notes:
            lines += ["## Notes", "", *[f"- {n}" for n in self.notes], ""]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.markdown()

    def write(self, figure: bool = True) -> None:
        """``doctor.md``, ``doctor.json`` and (``figure``) ``doctor.png`` into the run directory."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / REPORT_MD).write_text(self.markdown())
        write_json(self.run_dir / REPORT_JSON, self.as_dict())
        if figure:
            from initlab.plots.doctor import draw_doctor

            fig = draw_doctor(self)
            fig.savefig(self.run_dir / REPORT_FIGURE, dpi=110, bbox_inches="tight")
