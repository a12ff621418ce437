"""A reward model as judge: score each response alone, compare the scores.

A sequence-classification model with one output gives a reward ``r`` per
(conversation, response). Two responses compare as P(A > B) = σ(r_A − r_B), the
Bradley–Terry link reward models are trained with (Bradley & Terry 1952;
Ouyang et al. 2022); a slate gets softmax(r), the probability of being best under
the matching Plackett–Luce model (Luce 1959). Scores do not depend on display
order, so one order is evaluated and ``swap_consistent`` is None. Reward models
give no tie probability nor a rationale, so ``allow_tie`` and ``rationale`` are ignored.
"""

import inspect
import math
from collections.abc import Sequence

from prefstore.judges.base import (
    JudgeConfig,
    JudgeResult,
    ModelLoadError,
    Progress,
    conversation_messages,
    fit_to_length,
    length_sorted_batches,
    load_model_and_tokenizer,
    margin,
    rater_name,
    require_llm,
    uses_chat_template,
    validate_items,
)


class RewardJudge:
    """Judge responses with a reward model (``AutoModelForSequenceClassification``, one label).

    Raises
    ------
    MissingDependency
        when torch or transformers is not installed.
    ModelLoadError
        naming the model when it cannot be loaded or has more than one output.
    """

    def __init__(self, config: JudgeConfig):
        self.config = config
        _, self.device, self.tokenizer, model = load_model_and_tokenizer(
            config, "AutoModelForSequenceClassification", "the reward model",
            "the reward-model judge"
        )
        if model.config.num_labels != 1:
            raise ModelLoadError(
                f'judge model "{config.model}": a reward model needs one output '
                f"(num_labels=1), got {model.config.num_labels}"
            )
        if model.config.pad_token_id is None:
            # The head reads the last non-pad token, so it must know the pad id.
            model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model = model.to(self.device).eval()
        self._pass_positions = "position_ids" in inspect.signature(self.model.forward).parameters

    @property
    def name(self) -> str:
        """The rater name: the model directory's name, or the hub id."""
        return rater_name(self.config.model)

    def build_text(self, item: dict, response: str) -> tuple[str, bool]:
        """Return the text scored for one response and whether it was truncated.

        With a chat template the conversation plus an assistant turn is rendered;
        if that is too long the conversation is flattened into one user turn and cut
        from the left. Without a template, ``Role: content`` blocks are used.
        """
        messages = conversation_messages(item)
        max_length = self.config.max_length
        chat = uses_chat_template(self.tokenizer)
        if chat:
            text = self.tokenizer.apply_chat_template(
                messages + [{"role": "assistant", "content": response}], tokenize=False
            )
            n = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            if n <= max_length:
                return text, False

        def render(conversation, shown):
            if chat:
                return self.tokenizer.apply_chat_template(
                    [
                        {"role": "user", "content": conversation},
                        {"role": "assistant", "content": shown[0]},
                    ],
                    tokenize=False,
                )
            return f"{conversation}\n\nAssistant: {shown[0]}"

        flat = "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)
        return fit_to_length(self.tokenizer, render, flat, [response], max_length)

    def rewards(self, texts: Sequence[str], progress=None) -> list[float]:
        """Return the reward of each text, batched longest first with left padding."""
        torch, _ = require_llm()
        out = [0.0] * len(texts)
        with torch.inference_mode():
            for batch, inputs in length_sorted_batches(
                torch, self.tokenizer, texts, self.config.batch_size, self.device,
                self._pass_positions,
            ):
                scores = self.model(**inputs).logits[:, 0].float().tolist()
                for i, s in zip(batch, scores, strict=True):
                    out[i] = s
                if progress is not None:
                    progress(len(batch))
        return out

    def judge_items(
        self, items: Sequence[dict], progress: Progress | None = None
    ) -> list[JudgeResult]:
        """Score every response of every item and compare the rewards.

        ``progress(done, total)`` is called after each batch of forward passes.
        """
        validate_items(items)
        texts, truncated = [], []
        for item in items:
            for response in item["responses"]:
                text, cut = self.build_text(item, response)
                texts.append(text)
                truncated.append(cut)
        done = 0

        def tick(n):
            nonlocal done
            done += n
            if progress is not None:
                progress(done, len(texts))

        rewards = self.rewards(texts, progress=tick)
        results, start = [], 0
        for item in items:
            end = start + len(item["responses"])
            results.append(result_from_rewards(rewards[start:end], any(truncated[start:end])))
            start = end
        return results


def result_from_rewards(rewards: Sequence[float], truncated: bool = False) -> JudgeResult:
    """Turn per-response rewards into a JudgeResult (σ of differences, softmax for slates)."""
    k = len(rewards)
    if k == 2:
        probs = [_sigmoid(rewards[0] - rewards[1]), _sigmoid(rewards[1] - rewards[0])]
    else:
        top = max(rewards)
        exps = [math.exp(r - top) for r in rewards]
        probs = [e / sum(exps) for e in exps]
    ranking = sorted(range(k), key=lambda i: (-rewards[i], i))
    return JudgeResult(
        probs=probs,
        choice=ranking[0],
        ranking=ranking if k > 2 else None,
        confidence=margin(probs),
        swap_consistent=None,
        truncated=truncated,
        orders=[list(range(k))],
        per_order_probs=[list(probs)],
        scores=list(rewards),
    )


def _sigmoid(x: float) -> float:
    """Return 1 / (1 + e^-x) without overflowing for large |x|."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)
