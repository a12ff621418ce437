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
    {"judge": {"model": "meta-llama/Llama-3.1-70B-Instruct", "backend": "openai",
               "base_url": "http://gpu-box:8000/v1", "api_key_env": "PREFSTORE_JUDGE_API_KEY",
               "concurrency": 8, "requests_per_minute": 600, "timeout_s": 60, "max_retries": 3,
               "temperature": 0.7, "max_tokens": 8, "logprobs": False, "samples": 3,
               "allow_tie": True}},
    {"judge": {"model": "m", "backend": "openai", "base_url": "https://api.openai.com/v1",
               "logprobs": True, "requests_per_minute": 0.5, "timeout_s": 2.5}},
    # Fields the form does not show survive a save.
    {"judge": {"model": "m", "slate_mode": "listwise", "listwise_shuffles": 5, "seed": 7}},
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


def test_judge_form_values_are_widget_ready_and_blank_means_unset():
    values = ProjectSettings().form_values()
    assert (values["judge_model"], values["judge_base_url"], values["judge_api_key_env"]) == (
        "", "", "")
    assert (values["judge_timeout_s"], values["judge_temperature"],
            values["judge_requests_per_minute"]) == (120.0, 0.0, None)
    stored = ProjectSettings.from_dict({"judge": {
        "model": "m", "backend": "openai", "base_url": "http://h/v1", "timeout_s": 30}})
    assert type(stored.form_values()["judge_timeout_s"]) is float
    form = {**ProjectSettings().form_values(), "judge_model": " m ", "judge_backend": "openai",
            "judge_base_url": " http://h/v1 ", "judge_api_key_env": "  ",
            "judge_concurrency": 4, "judge_timeout_s": 30.0}
    assert ProjectSettings.form_changes(form)["judge"] == {
        "model": "m", "backend": "openai", "base_url": "http://h/v1", "timeout_s": 30}
