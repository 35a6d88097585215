"""The probe library's settings: a plain dataclass that ``conf/probe/default.yaml`` mirrors."""

from __future__ import annotations

import pytest
import yaml
from hydra import compose, initialize_config_dir

from initlab.config import config_dir
from initlab.errors import UserError
from initlab.probing.settings import CHECKS, ProbeSettings


def test_dataclass_defaults_equal_the_yaml_defaults() -> None:
    from_yaml = yaml.safe_load((config_dir() / "probe" / "default.yaml").read_text())
    assert ProbeSettings().as_dict() == from_yaml
    assert set(CHECKS) == set(from_yaml)  # every setting has its check


def test_composed_probe_presets_make_settings() -> None:
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        for preset in ("default", "every", "off"):
            cfg = compose("config", overrides=[f"probe={preset}"])
            settings = ProbeSettings.from_mapping(cfg.probe)
            assert settings.as_dict() == dict(cfg.probe) | {"steps": list(cfg.probe.steps)}


def test_schedules() -> None:
    log = ProbeSettings(schedule="log", points=30).schedule_steps(3000)
    assert log[0] == 0 and log[-1] == 3000 and 20 <= len(log) <= 31
    assert sum(s <= 100 for s in log) > len(log) / 2  # dense early
    assert ProbeSettings(schedule="every", every=7).schedule_steps(30) == [0, 7, 14, 21, 28]
    assert ProbeSettings(schedule="list", steps=[5, 3, 99]).schedule_steps(10) == [0, 3, 5]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"every": 0}, "probe.every=0 is not allowed: expected an integer >= 1"),
        ({"schedule": "often"}, "probe.schedule=often is not allowed: expected one of log, every, list"),
        ({"bins": 1}, "probe.bins=1 is not allowed: expected an integer >= 2"),
        ({"steps": [3, -1]}, r"probe.steps=\[3, -1\] is not allowed: expected a list of integers >= 0"),
        ({"jacobian": "yes"}, "probe.jacobian=yes is not allowed: expected true or false"),
        ({"colour": 1}, r"probe settings \['colour'\] are not allowed: expected enabled, schedule"),
    ],
)
def test_bad_values_raise_one_line_user_errors(given: dict, message: str) -> None:
    with pytest.raises(UserError, match=message) as caught:
        ProbeSettings.from_mapping(given)
    assert "\n" not in str(caught.value)


def test_the_probe_library_imports_neither_config_nor_the_training_stage_nor_sweeps() -> None:
    from test_structure import import_graph

    graph = import_graph()
    probing = {m: deps for m, deps in graph.items() if m.startswith("initlab.probing")}
    assert len(probing) >= 8
    forbidden = ("initlab.config", "initlab.lab", "initlab.sweep")
    found = {m: sorted(d for d in deps if d.startswith(forbidden)) for m, deps in probing.items()}
    assert not any(found.values()), found
