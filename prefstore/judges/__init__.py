"""LLM annotators: score responses with a causal LM, a reward model or a server, store nothing.

``load_judge(JudgeConfig(model=..., backend=...))`` returns a Judge whose
``judge_items(items)`` gives one JudgeResult per item (a server judge gives a
JudgeFailure for an item it could not judge). ``annotate_items`` runs any judge
over items and reports each outcome as soon as it is done. torch and transformers
are imported only when a local judge is loaded (``pip install 'prefstore[llm]'``),
the openai client only when a server judge is (``pip install 'prefstore[serve]'``).
"""

from prefstore.errors import InvalidInput
from prefstore.judges.annotate import AnnotateReport, annotate_items, iter_outcomes
from prefstore.judges.base import Judge, JudgeConfig, JudgeResult, ModelLoadError
from prefstore.judges.cache import MemoryCache, NullCache, ResponseCache
from prefstore.judges.generative import GenerativeJudge
from prefstore.judges.outcome import ItemOutcome, JudgeFailure
from prefstore.judges.reward import RewardJudge
from prefstore.judges.server import (
    JudgeServerError,
    LogprobsUnavailable,
    ServerJudge,
    ServerUnavailable,
    check_connection,
)

JUDGE_BACKENDS = {
    "generative": GenerativeJudge,
    "reward": RewardJudge,
    "openai": ServerJudge,
}


def load_judge(config: JudgeConfig | dict, cache: ResponseCache | None = None) -> Judge:
    """Load the judge a config describes (a JudgeConfig or a plain dict).

    A server judge (``"backend": "openai"``) checks the connection first and keeps
    responses in ``cache`` (default: a fresh MemoryCache).

    Raises
    ------
    InvalidInput
        for a bad config, or a ``cache`` given to a local judge.
    MissingDependency
        when torch and transformers (local judges) or openai (server judge) is missing.
    ModelLoadError
        naming the model when it cannot be loaded.
    JudgeServerError
        naming the setting to fix when the server cannot be used.
    """
    if isinstance(config, dict):
        config = JudgeConfig.from_dict(config)
    if not isinstance(config, JudgeConfig):
        raise InvalidInput(f"config must be a JudgeConfig or a dict, got {type(config).__name__}")
    if config.backend == "openai":
        return ServerJudge(config, cache=cache)
    if cache is not None:
        raise InvalidInput(f'a response cache applies to the "openai" backend, not {config.backend!r}')
    return JUDGE_BACKENDS[config.backend](config)


__all__ = [
    "JUDGE_BACKENDS",
    "AnnotateReport",
    "GenerativeJudge",
    "ItemOutcome",
    "Judge",
    "JudgeConfig",
    "JudgeFailure",
    "JudgeResult",
    "JudgeServerError",
    "LogprobsUnavailable",
    "MemoryCache",
    "ModelLoadError",
    "NullCache",
    "ResponseCache",
    "RewardJudge",
    "ServerJudge",
    "ServerUnavailable",
    "annotate_items",
    "check_connection",
    "iter_outcomes",
    "load_judge",
]
