"""A causal LM as judge: read the next-token probabilities of the answer labels.

The judge never parses free text. It builds a judging prompt that ends where the
answer goes, takes the logits at the last position, and restricts the softmax to
the answer labels ("A", "B", and "tie" when allowed). Each label counts the first
token of both its bare and its leading-space spelling ("A" and " A"), since after
"Answer:" a plain template expects " A" while a chat template starts the reply with
"A"; a spelling whose first token is shared with another label (say a lone space)
is dropped.

Every pair is judged in both display orders and the two are averaged, which
cancels position bias (Zheng et al. 2023, "Judging LLM-as-a-judge").
"""

import inspect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from prefstore.errors import InvalidInput
from prefstore.judges.aggregate import (  # noqa: F401 (bradley_terry_soft: re-exported)
    aggregate_listwise,
    aggregate_pair,
    aggregate_pairs_slate,
    bradley_terry_soft,
    listwise_orders,
)
from prefstore.judges.base import (
    LABELS,
    TIE_LABEL,
    JudgeConfig,
    JudgeResult,
    Progress,
    batched_inputs,
    fit_to_length,
    length_sorted_batches,
    listwise_instruction,
    load_model_and_tokenizer,
    pairwise_instruction,
    rater_name,
    render_conversation,
    require_llm,
    uses_chat_template,
    validate_items,
    wrap_prompt,
)


@dataclass
class _Request:
    item: int
    order: list[int]
    labels: tuple[str, ...]
    text: str
    truncated: bool


class GenerativeJudge:
    """Judge responses with a causal LM's answer-token probabilities.

    Parameters
    ----------
    config : a JudgeConfig with ``backend="generative"``.

    Raises
    ------
    MissingDependency
        when torch or transformers is not installed.
    ModelLoadError
        naming the model when it or its tokenizer cannot be loaded.
    """

    def __init__(self, config: JudgeConfig):
        self.config = config
        _, self.device, self.tokenizer, model = load_model_and_tokenizer(
            config, "AutoModelForCausalLM", "the causal LM", "the generative judge"
        )
        self.model = model.to(self.device).eval()
        params = inspect.signature(self.model.forward).parameters
        self._extra_kwargs = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self._pass_positions = "position_ids" in params
        self._label_ids_cache = {}

    @property
    def name(self) -> str:
        """The rater name: the model directory's name, or the hub id."""
        return rater_name(self.config.model)

    # ------------------------------------------------------------ prompts

    def build_pairwise_prompt(
        self, item: dict, order: Sequence[int], max_length: int | None = None
    ) -> tuple[str, bool]:
        """Return the judging prompt showing ``responses[order[0]]`` as A, ``order[1]`` as B.

        Returns the text and whether the conversation had to be truncated.
        """
        responses = [item["responses"][i] for i in order]
        allow_tie = self.config.allow_tie

        def render(conversation, shown):
            return wrap_prompt(
                self.tokenizer, pairwise_instruction(conversation, *shown, allow_tie=allow_tie)
            )

        return fit_to_length(
            self.tokenizer,
            render,
            render_conversation(item),
            responses,
            max_length or self.config.max_length,
        )

    def build_listwise_prompt(
        self, item: dict, order: Sequence[int], max_length: int | None = None
    ) -> tuple[str, bool]:
        """Return the prompt showing ``responses[order[j]]`` under letter ``LABELS[j]``."""
        responses = [item["responses"][i] for i in order]

        def render(conversation, shown):
            return wrap_prompt(self.tokenizer, listwise_instruction(conversation, shown))

        return fit_to_length(
            self.tokenizer,
            render,
            render_conversation(item),
            responses,
            max_length or self.config.max_length,
        )

    def label_token_ids(self, labels: Sequence[str]) -> list[list[int]]:
        """Return, per label, the token ids whose probability counts for it.

        Raises
        ------
        InvalidInput
            when the tokenizer cannot tell two labels apart by their first token.
        """
        key = tuple(labels)
        if key in self._label_ids_cache:
            return self._label_ids_cache[key]
        variants = []
        for label in labels:
            firsts = []
            for spelling in (label, " " + label):
                ids = self.tokenizer(spelling, add_special_tokens=False)["input_ids"]
                if ids and ids[0] not in firsts:
                    firsts.append(ids[0])
            variants.append(firsts)
        owners = {}
        for k, firsts in enumerate(variants):
            for t in firsts:
                owners.setdefault(t, set()).add(k)
        result = [[t for t in firsts if len(owners[t]) == 1] for firsts in variants]
        for label, ids in zip(labels, result, strict=True):
            if not ids:
                raise InvalidInput(
                    f'judge model "{self.config.model}": the tokenizer has no token that '
                    f'starts only the answer "{label}"'
                )
        self._label_ids_cache[key] = result
        return result

    # ------------------------------------------------------------ scoring

    def label_probs(
        self, texts: Sequence[str], labels: Sequence[Sequence[str]], progress=None
    ) -> list[list[float]]:
        """Return, per text, the probabilities of its labels as the next token.

        The softmax is restricted to the labels' token ids; texts are run in
        batches of ``batch_size``, longest first, with left padding.
        """
        torch, _ = require_llm()
        out = [None] * len(texts)
        with torch.inference_mode():
            for batch, inputs in length_sorted_batches(
                torch, self.tokenizer, texts, self.config.batch_size, self.device,
                self._pass_positions,
            ):
                # float64 so each item's probabilities sum to 1 well within 1e-6.
                logits = self.model(**inputs, **self._extra_kwargs).logits[:, -1, :].double()
                logprobs = torch.log_softmax(logits, dim=-1)
                for row, i in enumerate(batch):
                    ids = self.label_token_ids(labels[i])
                    per_label = torch.stack(
                        [torch.logsumexp(logprobs[row, group], dim=0) for group in ids]
                    )
                    out[i] = torch.softmax(per_label, dim=0).tolist()
                if progress is not None:
                    progress(len(batch))
        return out

    def judge_items(
        self, items: Sequence[dict], progress: Progress | None = None
    ) -> list[JudgeResult]:
        """Judge each item (``prompt`` or ``messages``, plus ``responses``).

        Two responses are judged in both orders; 3+ follow ``slate_mode``.
        ``progress(done, total)`` is called after each batch of forward passes.
        """
        validate_items(items)
        requests = []
        for i, item in enumerate(items):
            requests.extend(self._requests_for(i, item))
        total = len(requests) + (len(items) if self.config.rationale else 0)
        done = 0

        def tick(n):
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total)

        probs = self.label_probs(
            [r.text for r in requests], [r.labels for r in requests], progress=tick
        )
        by_item = [[] for _ in items]
        for request, p in zip(requests, probs, strict=True):
            by_item[request.item].append((request, p))
        results = []
        for item, scored in zip(items, by_item, strict=True):
            k = len(item["responses"])
            if k == 2:
                results.append(aggregate_pair(scored, self.config.allow_tie))
            elif self.config.slate_mode == "pairs":
                results.append(aggregate_pairs_slate(scored, k, self.config.allow_tie))
            else:
                results.append(aggregate_listwise(scored, k))
        if self.config.rationale:
            rationales = self.generate_rationales(items, results, progress=tick)
            for result, text in zip(results, rationales, strict=True):
                result.rationale = text
        return results

    def _requests_for(self, i, item):
        k = len(item["responses"])
        if k == 2 or self.config.slate_mode == "pairs":
            labels = ("A", "B", TIE_LABEL) if self.config.allow_tie else ("A", "B")
            orders = []
            for a, b in itertools.combinations(range(k), 2):
                orders += [[a, b], [b, a]]
            build = self.build_pairwise_prompt
        else:
            labels = tuple(LABELS[:k])
            orders = listwise_orders(k, self.config.listwise_shuffles, self.config.seed)
            build = self.build_listwise_prompt
        requests = []
        for order in orders:
            text, truncated = build(item, order)
            requests.append(_Request(i, order, labels, text, truncated))
        return requests

    def generate_rationales(
        self, items: Sequence[dict], results: Sequence[JudgeResult], progress=None
    ) -> list[str]:
        """Generate a short greedy rationale for each verdict, in the identity order.

        The prompt is the judging prompt followed by the verdict's label and
        ``Reason:``; ``rationale_tokens`` new tokens are decoded.
        """
        torch, _ = require_llm()
        budget = max(self.config.max_length - self.config.rationale_tokens - 8, 16)
        space = "" if uses_chat_template(self.tokenizer) else " "
        texts = []
        for item, result in zip(items, results, strict=True):
            k = len(item["responses"])
            order = list(range(k))
            if k == 2:
                text, _ = self.build_pairwise_prompt(item, order, max_length=budget)
            else:
                text, _ = self.build_listwise_prompt(item, order, max_length=budget)
            label = TIE_LABEL if result.choice == TIE_LABEL else LABELS[result.choice]
            texts.append(f"{text}{space}{label}\nReason:")
        out = []
        size = self.config.batch_size
        with torch.inference_mode():
            for start in range(0, len(texts), size):
                inputs = batched_inputs(
                    torch, self.tokenizer, texts[start : start + size], self.device
                )
                inputs.pop("position_ids")  # generate() derives them from the mask
                generated = self.model.generate(
                    **inputs,
                    max_new_tokens=self.config.rationale_tokens,
                    do_sample=False,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
                new = generated[:, inputs["input_ids"].shape[1] :]
                out += [
                    t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)
                ]
                if progress is not None:
                    progress(len(texts[start : start + size]))
        return out
