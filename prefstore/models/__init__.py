"""Preference models: pure numerics on integer-indexed judgments.

Every model in ``MODELS`` has a registry ``name``, a human ``label``, the
``data`` container it takes ("pairwise" or "rankings") and one ``fit`` method
returning a :class:`FitResult`, so a UI can offer a selectbox::

    model = get_model("bt")
    result = model.fit(pairwise_from_frames(judgments, responses), ci="hessian")
    result.to_dict()
"""

from __future__ import annotations

from prefstore.errors import InvalidInput
from prefstore.models.adapter import (
    STRENGTH_WEIGHTS,
    hybrid_items_from_frames,
    pairwise_from_frames,
    pairwise_style_from_frames,
    rankings_from_frames,
)
from prefstore.models.base import (
    ELO_BASE,
    ELO_PER_NAT,
    FitResult,
    Model,
    PairwiseData,
    RankingData,
    to_elo,
)
from prefstore.models.bradley_terry import (
    BradleyTerry,
    Davidson,
    PairCounts,
    aggregate_pairwise,
    bt_gradient,
    bt_hessian,
    bt_objective,
    bt_pairwise,
    davidson_gradient,
    davidson_hessian,
    davidson_objective,
    davidson_pairwise,
)
from prefstore.models.hybrid import (
    HybridItems,
    evaluate_hybrid,
    fit_hybrid,
    hybrid_pairwise,
)
from prefstore.models.judge_style import judge_style_bias
from prefstore.models.mixture import Mixture, MixtureEstimate, mixture_pairwise, mixture_rankings
from prefstore.models.plackett_luce import (
    PlackettLuce,
    pl_gradient,
    pl_hessian,
    pl_objective,
    pl_rankings,
)
from prefstore.models.style import (
    FASTCHAT_ALPHA,
    FASTCHAT_BETA,
    STYLE_FEATURE_DEFINITIONS,
    STYLE_FEATURES,
    StyleFitResult,
    fit_style_control,
    style_covariates,
    style_features,
    style_pairwise,
)

#: The available models, in the order a UI should offer them.
MODELS: list[Model] = [BradleyTerry(), Davidson(), PlackettLuce(), Mixture()]


def get_model(name: str) -> Model:
    """Return the registered model called ``name``.

    Raises
    ------
    InvalidInput
        If no model has that name; the message lists the valid names.
    """
    for model in MODELS:
        if model.name == name:
            return model
    valid = ", ".join(repr(m.name) for m in MODELS)
    raise InvalidInput(f'"model" must be one of {valid}, got {name!r}')


__all__ = [
    "ELO_BASE",
    "FASTCHAT_ALPHA",
    "FASTCHAT_BETA",
    "STYLE_FEATURES",
    "STYLE_FEATURE_DEFINITIONS",
    "StyleFitResult",
    "fit_style_control",
    "pairwise_style_from_frames",
    "style_covariates",
    "style_features",
    "style_pairwise",
    "ELO_PER_NAT",
    "MODELS",
    "STRENGTH_WEIGHTS",
    "BradleyTerry",
    "Davidson",
    "FitResult",
    "Mixture",
    "MixtureEstimate",
    "Model",
    "PairCounts",
    "PairwiseData",
    "PlackettLuce",
    "RankingData",
    "aggregate_pairwise",
    "bt_gradient",
    "bt_hessian",
    "bt_objective",
    "bt_pairwise",
    "davidson_gradient",
    "davidson_hessian",
    "davidson_objective",
    "davidson_pairwise",
    "HybridItems",
    "evaluate_hybrid",
    "fit_hybrid",
    "get_model",
    "hybrid_items_from_frames",
    "hybrid_pairwise",
    "judge_style_bias",
    "mixture_pairwise",
    "mixture_rankings",
    "pairwise_from_frames",
    "pl_gradient",
    "pl_hessian",
    "pl_objective",
    "pl_rankings",
    "rankings_from_frames",
    "to_elo",
]
