"""Config values a new user may type that no run can use: each is refused in one line naming the value and
what is allowed, before anything runs (:func:`initlab.config.validate`)."""

from __future__ import annotations

import pytest

from initlab.config import MAX_THREADS, ConfigError, validate


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["probe.schedule=list", "probe.steps=5"],
            "probe.steps=5 is not allowed: expected a list of integers",
        ),
        (["probe.steps=[0,-1]"], "probe.steps=[0, -1] is not allowed: expected a list of integers >= 0"),
        (["probe.bins=1000000"], "probe.bins=1000000 is not allowed: expected an integer >= 2 and <= 10000"),
        (
            ["probe.points=100000000"],
            "probe.points=100000000 is not allowed: expected an integer >= 1 and <=",
        ),
        (
            ["train.threads=1000"],
            "train.threads=1000 is not allowed: expected auto or an integer >= 1 and <= ",
        ),
        (
            ["data.augment.shift=inf"],
            "data.augment.shift=inf is not allowed: expected a number of pixels >= 0",
        ),
        (["data.augment.noise=nan"], "data.augment.noise=nan is not allowed: expected a number >= 0"),
        (["optim.lr=inf"], "optim.lr=inf is not allowed: expected a number > 0"),
        (
            ["seed=18446744073709551616"],
            "seed=18446744073709551616 is not allowed: expected an integer >= 0 and",
        ),
        (["probe.jacobian=1"], "probe.jacobian=1 is not allowed: expected true or false"),
        (
            ["train.steps=100", "probe.schedule=list", "probe.steps=[0,50,500]"],
            "probe.steps=[0, 50, 500] is not allowed with train.steps=100: expected steps <= 100",
        ),
        (
            ["model=cnn", "data=digits", "probe.jacobian=true"],
            "probe.jacobian=true is not allowed with model=cnn: expected model=mlp",
        ),
    ],
)
def test_value_without_a_use_is_refused(make_cfg, overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(make_cfg(*overrides))
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "overrides",
    [
        ["seed=18446744073709551615"],  # the largest seed torch.manual_seed takes
        [f"train.threads={MAX_THREADS}"],
        ["probe.bins=10000", "probe.points=100000"],
        ["train.steps=100", "probe.schedule=list", "probe.steps=[0,100]"],  # the last step is reached
        ["train.steps=100", "probe.steps=[0,500]"],  # not the list schedule: the steps are not used
        ["model=cnn", "data=digits", "probe.unit_distance=true"],
    ],
)
def test_values_at_the_bounds_are_allowed(make_cfg, overrides: list[str]) -> None:
    validate(make_cfg(*overrides))


def test_the_troubleshooting_page_quotes_the_real_lines() -> None:
    """Each row of docs/troubleshooting.md's "Bad values" table: what the user typed gives the line quoted."""
    import re
    import shlex
    from pathlib import Path

    from initlab.errors import UserError
    from initlab.theory_cli import compose_config

    page = (Path(__file__).parents[1] / "docs" / "troubleshooting.md").read_text()
    table = page.split("## Bad values")[1].split("\n## ")[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) >= 12
    for row in rows:
        typed, says = (re.findall(r"`([^`]+)`", cell)[0] for cell in row.split(" | ")[:2])
        with pytest.raises(UserError) as info:
            compose_config(shlex.split(typed))
        for fragment in filter(None, (part.strip() for part in says.split("..."))):
            assert fragment in str(info.value), (typed, fragment)
