"""prefstore.settings: the typed project settings, their checks and the Admin form's values."""

from __future__ import annotations

import pytest

from prefstore.errors import InvalidInput
from prefstore.settings import ProjectSettings, human_budget


@pytest.mark.parametrize("values", [
    {},
    {"aspects": ["helpfulness", "a, b"], "reason_tags": ["safer"], "human_budget": 0.25,
     "guidelines": "**be kind**", "gold_rate": 0},
    {"human_budget": 40},
    {"human_budget": 1},
    {"human_budget": 1.0},
    {"judge": {"model": "/models/j", "backend": "reward", "batch_size": 4}},
])
def test_form_round_trip(values):
    settings = ProjectSettings.from_dict(values)
    changes = ProjectSettings.form_changes(settings.form_values())
    assert settings.replace(**changes) == settings
    assert type(changes["human_budget"]) is type(settings.human_budget)


def test_defaults_and_to_dict():
    settings = ProjectSettings()
    assert settings.raters_per_item == 3 and settings.strength_scale is True
    assert settings.to_dict()["aspects"] == [] and settings.judge is None
    assert ProjectSettings.from_dict(settings.to_dict()) == settings


def test_from_stored_keeps_known_keys_and_drops_unknown_ones():
    stored = {"raters_per_item": 2, "aspects": ["a"], "a_newer_setting": 1}
    settings = ProjectSettings.from_stored(stored)
    assert (settings.raters_per_item, settings.aspects) == (2, ("a",))


def test_changes_lists_old_and_new_values():
    before = ProjectSettings()
    after = before.replace(raters_per_item=5, aspects=["x"])
    assert before.changes(after) == {"raters_per_item": {"old": 3, "new": 5},
                                     "aspects": {"old": [], "new": ["x"]}}


@pytest.mark.parametrize(("values", "message"), [
    ({"bogus": 1}, "settings: unknown key(s) bogus; valid keys are "),
    ({"raters_per_item": 0}, "settings: 'raters_per_item' must be an integer from 1 to 1000, "
                             "got 0"),
    ({"raters_per_item": True}, "settings: 'raters_per_item' must be an integer from 1 to "
                                "1000, got True"),
    ({"gold_rate": float("nan")}, "settings: 'gold_rate' must be a number in [0, 1], got nan"),
    ({"refit_every_minutes": float("inf")}, "settings: 'refit_every_minutes' must be a "
                                            "positive number, got inf"),
    ({"aspects": ["a", "a"]}, "settings: 'aspects' must be a list without duplicates"),
    ({"ranking_mode": "all"}, "settings: 'ranking_mode' must be \"best\" or \"full\", got 'all'"),
    ({"judge": {"model": "m", "backend": "nope"}}, "settings: 'judge': \"backend\" must be one of"),
])
def test_validation_names_the_setting(values, message):
    with pytest.raises(InvalidInput) as exc:
        ProjectSettings.from_dict(values)
    assert str(exc.value).startswith(message)


@pytest.mark.parametrize(("mode", "amount", "expected"), [
    ("none", 5.0, None), ("fraction", 0.5, 0.5), ("fraction", 1.0, 1.0), ("count", 40.0, 40),
    ("count", 1.0, 1), ("count", 0.0, 0)])
def test_human_budget(mode, amount, expected):
    got = human_budget(mode, amount)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(("mode", "amount", "message"), [
    ("fraction", 1.5, "settings: 'human_budget' as a fraction of the items must be in [0, 1], "
                      "got 1.5"),
    ("count", 2.5, "settings: 'human_budget' as a number of items must be a whole number, "
                   "got 2.5"),
    ("count", -1.0, "settings: 'human_budget' must be a number >= 0, got -1.0"),
    ("share", 0.5, "human budget mode must be one of none, fraction, count, got 'share'"),
])
def test_human_budget_errors(mode, amount, message):
    with pytest.raises(InvalidInput) as exc:
        human_budget(mode, amount)
    assert str(exc.value) == message


def test_form_changes_names_the_bad_setting():
    with pytest.raises(InvalidInput, match="'reason_tags' must be a list without duplicates"):
        ProjectSettings.form_changes({"reason_tags": "safer\n safer "})
    assert ProjectSettings.form_changes({"aspects": " a \n\n b\n", "raters_per_item": 2.0}) == {
        "aspects": ["a", "b"], "raters_per_item": 2}
