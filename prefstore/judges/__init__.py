"""LLM annotators: score responses with a causal LM or a reward model, store nothing.

``load_judge(JudgeConfig(model=..., backend=...))`` returns a Judge whose
``judge_items(items)`` gives one JudgeResult per item. torch and transformers are
imported only when a judge is loaded (``pip install 'prefstore[llm]'``).
"""

from prefstore.errors import InvalidInput
from prefstore.judges.base import Judge, JudgeConfig, JudgeResult, ModelLoadError
from prefstore.judges.generative import GenerativeJudge
from prefstore.judges.reward import RewardJudge

JUDGE_BACKENDS = {
    "generative": GenerativeJudge,
    "reward": RewardJudge,
}


def load_judge(config: JudgeConfig | dict) -> Judge:
    """Load the judge a config describes (a JudgeConfig or a plain dict).

    Raises
    ------
    InvalidInput
        for a bad config.
    MissingDependency
        when torch or transformers is not installed.
    ModelLoadError
        naming the model when it cannot be loaded.
    """
    if isinstance(config, dict):
        config = JudgeConfig.from_dict(config)
    if not isinstance(config, JudgeConfig):
        raise InvalidInput(f"config must be a JudgeConfig or a dict, got {type(config).__name__}")
    return JUDGE_BACKENDS[config.backend](config)


__all__ = [
    "JUDGE_BACKENDS",
    "GenerativeJudge",
    "Judge",
    "JudgeConfig",
    "JudgeResult",
    "ModelLoadError",
    "RewardJudge",
    "load_judge",
]
