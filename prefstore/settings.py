"""A project's settings: one typed dataclass, its validation, and its admin-form values.

The store keeps settings as JSON and hands back a :class:`ProjectSettings`;
the Admin page, ``prefstore settings`` and the importer build one from a form
or a dict, and every check lives in :meth:`ProjectSettings.validate`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prefstore.errors import InvalidInput

RANKING_MODES = ("best", "full")
BUDGET_MODES = ("none", "fraction", "count")
#: The judge fields the Admin form shows (``judge_<field>``); a blank model means no judge.
JUDGE_FORM_FIELDS = ("model", "backend", "allow_tie", "rationale", "batch_size", "max_length",
                     "device", "dtype", "base_url", "api_key_env", "concurrency",
                     "requests_per_minute", "timeout_s", "max_retries", "temperature",
                     "max_tokens", "logprobs", "samples")
# Text fields where a blank form field means "not set".
_JUDGE_TEXT_FIELDS = ("base_url", "api_key_env")
# Number fields the form edits as floats (Streamlit wants one type per number input).
_JUDGE_FLOAT_FIELDS = ("requests_per_minute", "timeout_s", "temperature")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


@dataclass(frozen=True)
class ProjectSettings:
    """How a project is rated, judged and refitted.

    Parameters
    ----------
    raters_per_item : human judgments wanted per item.
    strength_scale : pairwise items use the 7-step scale (A much better … B much better).
    aspects : Likert aspects (1..5) scored on the better response.
    rationale_required, rationale_min_chars : the "Why?" box.
    reason_tags : checkboxes offered with each judgment.
    edits_allowed : raters may improve the chosen response.
    guidelines : markdown shown above each item.
    human_budget : None, a fraction of the items in [0, 1] (float) or a count (int).
    gold_rate : share of served items that are gold.
    gold_feedback : after a gold item, tell the rater whether they matched its expected
        answer, and what it was.
    ranking_mode : slates ask for the best ("best") or a full ranking ("full").
    claim_ttl_seconds : a served, unsubmitted item returns to the pool after this.
    calibration_fraction : share of the human budget that the judge labels too.
    refit_every_judgments, refit_every_minutes : when the worker refits.
    active_selection : order human items by the expected information of their comparison.
    judge : the LLM judge configuration (see :mod:`prefstore.judges`), or None.
    """

    raters_per_item: int = 3
    strength_scale: bool = True
    aspects: tuple[str, ...] = ()
    rationale_required: bool = False
    rationale_min_chars: int = 0
    reason_tags: tuple[str, ...] = ()
    edits_allowed: bool = True
    guidelines: str = ""
    human_budget: float | int | None = None
    gold_rate: float = 0.05
    gold_feedback: bool = False
    ranking_mode: str = "best"
    claim_ttl_seconds: int = 1800
    calibration_fraction: float = 0.1
    refit_every_judgments: int = 50
    refit_every_minutes: float = 10
    active_selection: bool = False
    judge: dict | None = field(default=None, hash=False)

    # ---- building -------------------------------------------------------

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None = None, *,
                  base: ProjectSettings | None = None) -> ProjectSettings:
        """Return ``values`` over ``base`` (default: the defaults), validated.

        Raises
        ------
        InvalidInput
            Naming the setting: an unknown key, or a value of the wrong type or range.
        """
        values = dict(values or {})
        unknown = sorted(set(values) - set(cls.keys()))
        if unknown:
            raise InvalidInput(f"settings: unknown key(s) {', '.join(unknown)}; valid keys are "
                               f"{', '.join(sorted(cls.keys()))}")
        merged = {**(base or cls()).to_dict(), **values}
        for key in ("aspects", "reason_tags"):
            if isinstance(merged[key], list):
                merged[key] = tuple(merged[key])
        settings = cls(**merged)
        settings.validate()
        return settings

    @classmethod
    def from_stored(cls, values: Mapping[str, Any]) -> ProjectSettings:
        """Rebuild stored settings; keys a newer or older prefstore wrote are kept or defaulted."""
        known = {k: v for k, v in values.items() if k in cls.keys()}
        for key in ("aspects", "reason_tags"):
            if isinstance(known.get(key), list):
                known[key] = tuple(known[key])
        return cls(**known)

    def replace(self, **changes: Any) -> ProjectSettings:
        return ProjectSettings.from_dict(changes, base=self)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["aspects"], out["reason_tags"] = list(self.aspects), list(self.reason_tags)
        return out

    def changes(self, other: ProjectSettings) -> dict[str, dict[str, Any]]:
        """Return ``{key: {"old", "new"}}`` for every setting that differs in ``other``."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {k: {"old": mine[k], "new": theirs[k]} for k in mine if mine[k] != theirs[k]}

    # ---- checks ---------------------------------------------------------

    def validate(self) -> None:
        """Raise InvalidInput naming the first setting that is out of type or range."""
        def need(cond: bool, key: str, what: str) -> None:
            if not cond:
                value = getattr(self, key)
                shown = list(value) if isinstance(value, tuple) else value  # as it was given
                raise InvalidInput(f"settings: {key!r} must be {what}, got {shown!r}")

        need(_is_int(self.raters_per_item) and 1 <= self.raters_per_item <= 1000,
             "raters_per_item", "an integer from 1 to 1000")
        for key in ("strength_scale", "rationale_required", "edits_allowed",
                    "active_selection", "gold_feedback"):
            need(isinstance(getattr(self, key), bool), key, "true or false")
        need(_is_int(self.rationale_min_chars) and 0 <= self.rationale_min_chars <= 100_000,
             "rationale_min_chars", "an integer from 0 to 100000")
        for key in ("aspects", "reason_tags"):
            value = getattr(self, key)
            need(isinstance(value, tuple) and all(isinstance(v, str) and v.strip()
                                                  for v in value),
                 key, "a list of non-empty strings")
            need(len(set(value)) == len(value), key, "a list without duplicates")
        need(isinstance(self.guidelines, str), "guidelines", "markdown text")
        budget = self.human_budget
        need(budget is None or (_is_number(budget) and budget >= 0
                                and (budget <= 1 or float(budget).is_integer())),
             "human_budget", "null, a fraction in [0, 1] or a whole count of items")
        need(_is_number(self.gold_rate) and 0 <= self.gold_rate <= 1, "gold_rate",
             "a number in [0, 1]")
        need(self.ranking_mode in RANKING_MODES, "ranking_mode", '"best" or "full"')
        need(_is_int(self.claim_ttl_seconds) and 10 <= self.claim_ttl_seconds <= 10**7,
             "claim_ttl_seconds", "an integer from 10 to 10000000")
        need(_is_number(self.calibration_fraction) and 0 <= self.calibration_fraction <= 1,
             "calibration_fraction", "a number in [0, 1]")
        need(_is_int(self.refit_every_judgments) and 1 <= self.refit_every_judgments <= 10**9,
             "refit_every_judgments", "an integer >= 1")
        need(_is_number(self.refit_every_minutes) and 0 < self.refit_every_minutes <= 10**6,
             "refit_every_minutes", "a positive number")
        need(self.judge is None or isinstance(self.judge, dict), "judge",
             "null or an object with the judge configuration")
        if self.judge is not None:
            from prefstore.judges.base import JudgeConfig  # pure dataclass, no torch

            try:
                JudgeConfig.from_dict(self.judge)
            except InvalidInput as exc:
                raise InvalidInput(f"settings: 'judge': {exc}") from exc

    # ---- the Admin form -------------------------------------------------

    def form_values(self) -> dict[str, Any]:
        """Return the Admin form's starting values (the inverse of :meth:`from_form`)."""
        budget = self.human_budget
        if budget is None:
            mode, amount = "none", 0.0
        elif isinstance(budget, float):
            mode, amount = ("fraction" if budget <= 1 else "count"), float(budget)
        else:
            mode, amount = "count", float(budget)
        values = {key: getattr(self, key) for key in FORM_SETTINGS if key != "human_budget"}
        values["aspects"] = "\n".join(self.aspects)
        values["reason_tags"] = "\n".join(self.reason_tags)
        for key in ("gold_rate", "calibration_fraction", "refit_every_minutes"):
            values[key] = float(values[key])
        values["budget_mode"], values["budget"] = mode, amount
        judge = {**judge_defaults(), "model": "", **(self.judge or {})}
        # Every judge field, also those the form does not show, so the page can pass
        # them through and a save keeps them.
        for name in judge_fields():
            value = judge.get(name)
            if name in _JUDGE_TEXT_FIELDS and value is None:
                value = ""
            elif name in _JUDGE_FLOAT_FIELDS and value is not None:
                value = float(value)
            values[f"judge_{name}"] = value
        return values

    @classmethod
    def form_changes(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        """Return the setting changes a form holds, as stored values, validated.

        ``values`` has any of :data:`FORM_SETTINGS` (``aspects`` and
        ``reason_tags`` one per line; the budget as ``budget_mode`` plus
        ``budget``; the judge as ``judge_<field>``). Keys the form did not show
        are left out, so they keep their stored or default values.
        """
        out: dict[str, Any] = {key: values[key] for key in FORM_SETTINGS if key in values}
        for key in ("aspects", "reason_tags"):
            if key in out:
                out[key] = lines(out[key])
        for key in ("raters_per_item", "rationale_min_chars", "refit_every_judgments",
                    "claim_ttl_seconds"):
            if key in out and isinstance(out[key], float) and out[key].is_integer():
                out[key] = int(out[key])
        if "budget_mode" in values:
            out["human_budget"] = human_budget(values["budget_mode"], values.get("budget"))
        if "judge_model" in values:
            out["judge"] = judge_from_form(values)
        cls.from_dict(out)
        return out


#: The settings the Admin form edits; the others keep their stored values.
FORM_SETTINGS = ("raters_per_item", "strength_scale", "ranking_mode", "aspects",
                 "rationale_required", "rationale_min_chars", "reason_tags", "edits_allowed",
                 "gold_rate", "gold_feedback", "human_budget", "guidelines", "calibration_fraction",
                 "refit_every_judgments", "refit_every_minutes", "claim_ttl_seconds",
                 "active_selection")


def lines(text: str | None) -> list[str]:
    """Split one-entry-per-line text into its stripped, non-blank lines."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def judge_defaults() -> dict[str, Any]:
    """The default of every judge field that has one (a pure dataclass, no torch)."""
    from prefstore.judges.base import JudgeConfig

    return {f.name: f.default for f in dataclasses.fields(JudgeConfig)
            if f.default is not dataclasses.MISSING}


def judge_fields() -> tuple[str, ...]:
    """Every field of a judge setting, ``model`` first."""
    from prefstore.judges.base import JudgeConfig

    return tuple(f.name for f in dataclasses.fields(JudgeConfig))


def human_budget(mode: str, amount: float | None) -> float | int | None:
    """Return the stored human budget for a form's mode and amount.

    A fraction is stored as a float in [0, 1] and a count of items as an int:
    :func:`prefstore.routing.budget_count` tells them apart by type.
    """
    if mode not in BUDGET_MODES:
        raise InvalidInput(f"human budget mode must be one of {', '.join(BUDGET_MODES)}, "
                           f"got {mode!r}")
    if mode == "none":
        return None
    if amount is None or not _is_number(amount) or amount < 0:
        raise InvalidInput(f"settings: 'human_budget' must be a number >= 0, got {amount!r}")
    if mode == "fraction":
        if amount > 1:
            raise InvalidInput(f"settings: 'human_budget' as a fraction of the items must be "
                               f"in [0, 1], got {amount!r}")
        return float(amount)
    if not float(amount).is_integer():
        raise InvalidInput(f"settings: 'human_budget' as a number of items must be a whole "
                           f"number, got {amount!r}")
    return int(amount)


def judge_from_form(values: Mapping[str, Any]) -> dict | None:
    """Return the judge setting from a form's ``judge_*`` fields; None without a model.

    Only fields that differ from the judge's defaults are stored, so a later
    change of a default reaches projects that never set it; a field the form
    left out gets its default. A blank ``base_url`` or ``api_key_env`` is unset.
    """
    model = str(values.get("judge_model") or "").strip()
    if not model:
        return None
    defaults = judge_defaults()
    judge: dict[str, Any] = {"model": model}
    for name in judge_fields()[1:]:
        value = values.get(f"judge_{name}", defaults.get(name))
        if name in _JUDGE_TEXT_FIELDS and isinstance(value, str):
            value = value.strip() or None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if value != defaults.get(name):
            judge[name] = value
    return judge
