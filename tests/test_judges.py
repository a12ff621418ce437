import itertools
import math
import os
import subprocess
import sys

import pytest

from prefstore.errors import InvalidInput, MissingDependency, PrefstoreError
from prefstore.judges import (
    JUDGE_BACKENDS,
    Judge,
    JudgeConfig,
    JudgeResult,
    ModelLoadError,
    load_judge,
)
from prefstore.judges.base import rater_name, validate_items
from prefstore.judges.generative import bradley_terry_soft, listwise_orders

# The session fixtures tiny_causal_lm_path, tiny_chat_lm_path, tiny_reward_model_path.
pytest_plugins = ["tests.tiny_models"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.llm

# Batched (left-padded) and single forward passes differ by float32 rounding only.
ATOL = 1e-5

INSTRUCTION = (
    "You are comparing two responses to the same conversation. "
    "Judge which response is more helpful, correct and clear.\n\n"
    "[Conversation]\n{conversation}\n\n"
    "[Response A]\n{a}\n\n"
    "[Response B]\n{b}\n\n"
    "Which response is better? Answer with A or B{tie}."
)

ITEMS = [
    {"prompt": "What is the capital of France?", "responses": ["Paris.", "It is Lyon, I think."]},
    {"prompt": "Explain why the sky is blue.", "responses": ["Rayleigh scattering.", "No idea"]},
    {
        "messages": [
            {"role": "user", "content": "Write a short poem about the sea."},
            {"role": "assistant", "content": "The sea is blue and wide."},
            {"role": "user", "content": "Make it longer."},
        ],
        "responses": ["The sea is blue and wide, it rolls with every tide.", "Waves."],
    },
    {"prompt": "Say something.", "responses": ["The quick brown fox.", "The lazy dog."]},
    # Response 0 wins in both display orders with the tiny model.
    {"prompt": "Name a city.", "responses": ["Roses are red.", "No idea"]},
]

LONG_ITEM = {
    "prompt": "The quick brown fox jumps over the lazy dog. " * 60 + "What is the capital?",
    "responses": ["Paris", "Lyon"],
}


def plain_prompt(conversation, a, b, allow_tie=False):
    tie = ", or tie if they are equally good" if allow_tie else ""
    return INSTRUCTION.format(conversation=conversation, a=a, b=b, tie=tie) + "\nAnswer:"


def conversation_text(item):
    if "prompt" in item:
        return item["prompt"]
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in item["messages"])


class Reference:
    """The same model loaded separately and run one unpadded sequence at a time."""

    def __init__(self, path, loader=None):
        loader = loader or transformers.AutoModelForCausalLM
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        self.model = loader.from_pretrained(path).eval()

    def first_ids(self, label):
        ids = {
            self.tokenizer(s, add_special_tokens=False)["input_ids"][0]
            for s in (label, " " + label)
        }
        return sorted(ids)

    def label_probs(self, text, labels, add_special_tokens=True):
        enc = self.tokenizer(text, return_tensors="pt", add_special_tokens=add_special_tokens)
        with torch.no_grad():
            logits = self.model(**enc).logits[0, -1].double()
        groups = [self.first_ids(label) for label in labels]
        union = sorted(set().union(*groups))
        probs = torch.softmax(logits[union], dim=0)
        return [sum(probs[union.index(t)].item() for t in g) for g in groups]

    def reward(self, text):
        enc = self.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            return self.model(**enc).logits[0, 0].item()


def argmax(values):
    return max(range(len(values)), key=lambda i: values[i])


@pytest.fixture(scope="module")
def judge(tiny_causal_lm_path):
    return load_judge(JudgeConfig(model=str(tiny_causal_lm_path), batch_size=3))


@pytest.fixture(scope="module")
def reference(tiny_causal_lm_path):
    return Reference(tiny_causal_lm_path)


@pytest.fixture(scope="module")
def results(judge):
    return judge.judge_items(ITEMS)


# ---------------------------------------------------------------- config


def test_config_from_dict_round_trips():
    config = JudgeConfig.from_dict({"model": "org/judge", "backend": "reward", "batch_size": 4})
    assert config == JudgeConfig(model="org/judge", backend="reward", batch_size=4)
    assert JudgeConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("d", "message"),
    [
        ({}, '"model" is required'),
        ({"model": "m", "top_p": 1}, 'unknown field "top_p"'),
        ({"model": "m", "backend": "api"}, '"backend" must be one of generative, reward'),
        ({"model": "m", "batch_size": 0}, '"batch_size" must be an integer >= 1, got 0'),
        ({"model": "m", "device": "tpu"}, '"device" must be one of'),
        ({"model": "m", "dtype": "int8"}, '"dtype" must be one of'),
        ({"model": "m", "slate_mode": "all"}, '"slate_mode" must be one of pairs, listwise'),
        ({"model": "m", "allow_tie": "yes"}, '"allow_tie" must be true or false'),
        ({"model": "m", "listwise_shuffles": 0}, '"listwise_shuffles" must be an integer >= 1'),
        ({"model": ""}, '"model" must be a non-empty string'),
    ],
)
def test_config_from_dict_names_the_bad_field(d, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(")):
        JudgeConfig.from_dict(d)


def test_registry_lists_every_backend():
    assert sorted(JUDGE_BACKENDS) == ["generative", "openai", "reward"]


def test_loaded_judges_follow_the_protocol(judge, tiny_causal_lm_path):
    assert isinstance(judge, Judge)
    assert judge.name == tiny_causal_lm_path.name


def test_rater_name_is_directory_name_or_hub_id(tiny_causal_lm_path):
    assert rater_name(str(tiny_causal_lm_path) + "/") == tiny_causal_lm_path.name
    assert rater_name("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (
            [{"prompt": "q", "responses": ["a"]}],
            'item 0: "responses" must have at least 2 entries, got 1',
        ),
        (
            [{"prompt": "q", "responses": ["a"] * 11}],
            'item 0: "responses" must have at most 10 entries, got 11',
        ),
        ([{"responses": ["a", "b"]}], 'item 0: give exactly one of "prompt" or "messages"'),
        ([{"prompt": "q", "messages": [], "responses": ["a", "b"]}], "exactly one of"),
        ([{"messages": [{"role": "user"}], "responses": ["a", "b"]}], r'"messages"\[0\] must be'),
        ([{"prompt": "q", "responses": ["a", 3]}], r'item 0: "responses"\[1\] must be a string'),
    ],
)
def test_items_are_validated(items, message):
    with pytest.raises(InvalidInput, match=message):
        validate_items(items)


# ---------------------------------------------------------------- loading errors


def test_missing_model_path_names_the_path(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError, match=f'"{missing}": no such directory'):
        load_judge(JudgeConfig(model=str(missing)))


def test_unloadable_model_dir_names_the_path_and_reason(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(
        ModelLoadError, match=f'judge model "{tmp_path}": cannot load the tokenizer'
    ):
        load_judge({"model": str(tmp_path)})


def test_unknown_hub_id_offline_is_a_load_error():
    with pytest.raises(PrefstoreError, match='"prefstore-tests/no-such-model": cannot load'):
        load_judge(JudgeConfig(model="prefstore-tests/no-such-model"))


def test_causal_lm_is_not_a_reward_model(tiny_causal_lm_path):
    with pytest.raises(ModelLoadError, match=r"one output \(num_labels=1\), got 2"):
        load_judge(JudgeConfig(model=str(tiny_causal_lm_path), backend="reward"))


@pytest.mark.parametrize("backend", ["generative", "reward"])
@pytest.mark.parametrize("module", ["transformers", "torch"])
def test_missing_extra_raises_missing_dependency(monkeypatch, tiny_causal_lm_path, backend, module):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependency, match=r"pip install 'prefstore\[llm\]'"):
        load_judge(JudgeConfig(model=str(tiny_causal_lm_path), backend=backend))


def test_judges_import_without_torch_or_transformers():
    code = (
        "import sys\n"
        "sys.modules['torch'] = sys.modules['transformers'] = None\n"
        "sys.modules['sentence_transformers'] = None\n"
        "import prefstore.judges, prefstore.similarity\n"
        "assert prefstore.similarity.embedding_similarity([('a', 'b')]) is None\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


# ---------------------------------------------------------------- generative, pairs


def test_plain_prompt_is_exact(judge):
    text, truncated = judge.build_pairwise_prompt(ITEMS[0], [1, 0])
    assert text == plain_prompt("What is the capital of France?", "It is Lyon, I think.", "Paris.")
    assert truncated is False


def test_messages_are_rendered_as_role_blocks(judge):
    text, _ = judge.build_pairwise_prompt(ITEMS[2], [0, 1])
    conversation = (
        "User: Write a short poem about the sea.\n\n"
        "Assistant: The sea is blue and wide.\n\n"
        "User: Make it longer."
    )
    assert text == plain_prompt(conversation, *ITEMS[2]["responses"])


def test_both_orders_are_evaluated(results):
    for r in results:
        assert r.orders == [[0, 1], [1, 0]]
        assert len(r.per_order_probs) == 2
    # Position bias makes the two orders disagree in general.
    assert any(abs(r.per_order_probs[0][0] - r.per_order_probs[1][1]) > 1e-3 for r in results)


def test_probabilities_sum_to_one(results):
    for r in results:
        assert r.p_tie is None
        assert math.isclose(sum(r.probs), 1.0, abs_tol=1e-6)
        for p in r.per_order_probs:
            assert math.isclose(sum(p), 1.0, abs_tol=1e-6)


def test_probs_are_the_mean_of_both_orders_from_a_manual_forward(results, reference):
    for item, r in zip(ITEMS, results):
        conversation = conversation_text(item)
        a, b = item["responses"]
        forward = reference.label_probs(plain_prompt(conversation, a, b), ["A", "B"])
        swapped = reference.label_probs(plain_prompt(conversation, b, a), ["A", "B"])
        assert r.per_order_probs[0] == pytest.approx(forward, abs=ATOL)
        assert r.per_order_probs[1] == pytest.approx(swapped, abs=ATOL)
        expected = [(forward[0] + swapped[1]) / 2, (forward[1] + swapped[0]) / 2]
        assert r.probs == pytest.approx(expected, abs=ATOL)
        assert r.choice == argmax(expected)
        assert r.confidence == pytest.approx(abs(expected[0] - expected[1]), abs=ATOL)


def test_swap_consistent_compares_the_argmax_of_each_order(results):
    for r in results:
        first = argmax(r.per_order_probs[0])
        second = 1 - argmax(r.per_order_probs[1])  # display B in order [1, 0] is response 0
        assert r.swap_consistent is (first == second)
    # The fixture items cover both cases, so the test above is not vacuous.
    assert {r.swap_consistent for r in results} == {True, False}


def test_batching_does_not_change_probabilities(judge, results):
    for item, r in zip(ITEMS, results):
        alone = judge.judge_items([item])[0]
        for got, want in zip(alone.per_order_probs, r.per_order_probs):
            assert got == pytest.approx(want, abs=ATOL)


def test_to_judgment_is_ready_for_storage(results):
    r = results[0]
    assert r.to_judgment() == {
        "outcome": "choice",
        "choice": r.choice,
        "ranking": None,
        "strength": None,
        "display_order": [0, 1],
        "rationale": None,
        "metadata": {
            "confidence": r.confidence,
            "swap_consistent": r.swap_consistent,
            "probs": r.probs,
            "truncated": False,
            "orders": [[0, 1], [1, 0]],
        },
    }


def test_tie_verdict_becomes_a_tie_judgment():
    r = JudgeResult(probs=[0.2, 0.3], choice="tie", confidence=0.2, p_tie=0.5, swap_consistent=True)
    judgment = r.to_judgment()
    assert judgment["outcome"] == "tie"
    assert judgment["choice"] is None
    assert judgment["metadata"]["p_tie"] == 0.5


def test_progress_reports_every_batch(judge):
    calls = []
    judge.judge_items(ITEMS, progress=lambda done, total: calls.append((done, total)))
    # 5 items x 2 orders in batches of 3.
    assert calls == [(3, 10), (6, 10), (9, 10), (10, 10)]


def test_label_token_ids_take_first_token_of_both_spellings(judge, reference):
    assert judge.label_token_ids(["A", "B", "tie"]) == [
        reference.first_ids("A"),
        reference.first_ids("B"),
        reference.first_ids("tie"),
    ]


def test_tie_probability_is_averaged_and_sums_to_one(tiny_causal_lm_path, reference):
    tie_judge = load_judge(JudgeConfig(model=str(tiny_causal_lm_path), allow_tie=True))
    item = ITEMS[1]
    r = tie_judge.judge_items([item])[0]
    a, b = item["responses"]
    labels = ["A", "B", "tie"]
    forward = reference.label_probs(plain_prompt(item["prompt"], a, b, True), labels)
    swapped = reference.label_probs(plain_prompt(item["prompt"], b, a, True), labels)
    assert r.per_order_probs[0] == pytest.approx(forward, abs=ATOL)
    assert r.per_order_probs[1] == pytest.approx(swapped, abs=ATOL)
    assert r.probs == pytest.approx(
        [(forward[0] + swapped[1]) / 2, (forward[1] + swapped[0]) / 2], abs=ATOL
    )
    assert r.p_tie == pytest.approx((forward[2] + swapped[2]) / 2, abs=ATOL)
    assert math.isclose(sum(r.probs) + r.p_tie, 1.0, abs_tol=1e-6)
    everything = r.probs + [r.p_tie]
    top = argmax(everything)
    assert r.choice == ("tie" if top == 2 else top)


def test_long_inputs_are_truncated_from_the_left(tiny_causal_lm_path):
    short_judge = load_judge(JudgeConfig(model=str(tiny_causal_lm_path), max_length=160))
    text, truncated = short_judge.build_pairwise_prompt(LONG_ITEM, [0, 1])
    assert truncated is True
    assert len(short_judge.tokenizer(text)["input_ids"]) <= 160
    assert "What is the capital?\n\n[Response A]\nParis\n\n[Response B]\nLyon\n\n" in text
    assert text.startswith("You are comparing two responses")
    results = short_judge.judge_items([LONG_ITEM, ITEMS[0]])
    assert [r.truncated for r in results] == [True, False]
    assert results[0].to_judgment()["metadata"]["truncated"] is True


def test_overlong_responses_are_cut_from_the_right(tiny_causal_lm_path):
    short_judge = load_judge(JudgeConfig(model=str(tiny_causal_lm_path), max_length=160))
    item = {"prompt": "What?", "responses": ["Paris " * 200, "Lyon " * 200]}
    text, truncated = short_judge.build_pairwise_prompt(item, [0, 1])
    assert truncated is True
    assert len(short_judge.tokenizer(text)["input_ids"]) <= 160
    assert "[Response A]\nParis Paris" in text and "[Response B]\nLyon Lyon" in text


def test_max_length_too_small_for_the_template_is_invalid(tiny_causal_lm_path):
    tiny = load_judge(JudgeConfig(model=str(tiny_causal_lm_path), max_length=40))
    with pytest.raises(InvalidInput, match='"max_length" of 40 tokens is too small'):
        tiny.judge_items([LONG_ITEM])


def test_rationale_is_generated_when_asked(tiny_causal_lm_path):
    config = JudgeConfig(model=str(tiny_causal_lm_path), rationale=True, rationale_tokens=4)
    results = load_judge(config).judge_items(ITEMS[:2])
    for r in results:
        assert isinstance(r.rationale, str)
        assert r.to_judgment()["rationale"] == r.rationale


# ---------------------------------------------------------------- chat template


def test_chat_template_is_used_when_set(tiny_chat_lm_path):
    chat_judge = load_judge(JudgeConfig(model=str(tiny_chat_lm_path)))
    assert chat_judge.tokenizer.chat_template.startswith("{% for message in messages %}")
    item = ITEMS[0]
    text, _ = chat_judge.build_pairwise_prompt(item, [0, 1])
    instruction = INSTRUCTION.format(
        conversation=item["prompt"], a="Paris.", b="It is Lyon, I think.", tie=""
    )
    assert text == f"<|user|>\n{instruction}<eos>\n<|assistant|>\n"

    reference = Reference(tiny_chat_lm_path)
    r = chat_judge.judge_items([item])[0]
    forward = reference.label_probs(text, ["A", "B"], add_special_tokens=False)
    assert r.per_order_probs[0] == pytest.approx(forward, abs=ATOL)


# ---------------------------------------------------------------- slates


SLATE = {
    "prompt": "Write a short poem about the sea.",
    "responses": ["The sea is blue and wide.", "Waves.", "Roses are red.", "The sea, the sea!"],
}


def test_pairs_mode_ranks_a_slate(judge):
    r = judge.judge_items([SLATE])[0]
    k = 4
    assert sorted(r.ranking) == list(range(k))
    assert r.choice == r.ranking[0]
    assert sorted(map(tuple, r.orders)) == sorted(itertools.permutations(range(k), 2))
    assert math.isclose(sum(r.probs), 1.0, abs_tol=1e-6)

    # Soft wins recomputed from the per-order probabilities.
    wins = [[0.0] * k for _ in range(k)]
    for (a, b), p in zip(r.orders, r.per_order_probs):
        wins[a][b] += p[0] / 2
        wins[b][a] += p[1] / 2
    summed = [sum(row) for row in wins]
    assert r.ranking == sorted(range(k), key=lambda i: -summed[i])
    assert r.probs == pytest.approx(bradley_terry_soft(wins), abs=1e-9)
    to_judgment = r.to_judgment()
    assert to_judgment["ranking"] == r.ranking
    assert to_judgment["display_order"] == [0, 1, 2, 3]


def test_pair_scores_match_the_pair_judged_alone(judge):
    r = judge.judge_items([SLATE])[0]
    alone = judge.judge_items([{"prompt": SLATE["prompt"], "responses": SLATE["responses"][1:3]}])[
        0
    ]
    at = r.orders.index([1, 2])
    assert r.per_order_probs[at] == pytest.approx(alone.per_order_probs[0], abs=ATOL)


def test_bradley_terry_soft_closed_forms():
    assert bradley_terry_soft([[0, 0.7], [0.3, 0]]) == pytest.approx([0.7, 0.3])
    cycle = [[0, 0.8, 0.2], [0.2, 0, 0.8], [0.8, 0.2, 0]]
    assert bradley_terry_soft(cycle) == pytest.approx([1 / 3] * 3)


def test_listwise_mode_averages_seeded_shuffles(tiny_causal_lm_path, reference):
    config = JudgeConfig(
        model=str(tiny_causal_lm_path), slate_mode="listwise", listwise_shuffles=3, seed=7
    )
    listwise = load_judge(config)
    r = listwise.judge_items([SLATE])[0]
    assert r.orders == listwise_orders(4, 3, 7)
    assert len({tuple(o) for o in r.orders}) == 3
    labels = ["A", "B", "C", "D"]
    expected = [0.0] * 4
    for order, probs in zip(r.orders, r.per_order_probs):
        text, _ = listwise.build_listwise_prompt(SLATE, order)
        assert text.endswith("Which response is best? Answer with one letter: A, B, C, D.\nAnswer:")
        manual = reference.label_probs(text, labels)
        assert probs == pytest.approx(manual, abs=ATOL)
        for pos, response in enumerate(order):
            expected[response] += manual[pos] / 3
    assert r.probs == pytest.approx(expected, abs=ATOL)
    assert math.isclose(sum(r.probs), 1.0, abs_tol=1e-6)
    assert r.ranking == sorted(range(4), key=lambda i: -expected[i])
    assert listwise.judge_items([SLATE])[0].probs == r.probs


def test_listwise_orders_are_distinct_and_capped():
    assert listwise_orders(3, 10, 0) == listwise_orders(3, 10, 0)
    assert sorted(map(tuple, listwise_orders(3, 10, 0))) == sorted(itertools.permutations(range(3)))


# ---------------------------------------------------------------- reward model


def reward_text(item, response):
    return f"{conversation_text({'messages': [{'role': 'user', 'content': item['prompt']}]})}\n\nAssistant: {response}"


def test_reward_probability_is_sigmoid_of_reward_difference(tiny_reward_model_path):
    reward_judge = load_judge(
        JudgeConfig(model=str(tiny_reward_model_path), backend="reward", batch_size=3)
    )
    reference = Reference(tiny_reward_model_path, transformers.AutoModelForSequenceClassification)
    items = [ITEMS[0], ITEMS[1], ITEMS[3]]
    results = reward_judge.judge_items(items)
    for item, r in zip(items, results):
        r0, r1 = (reference.reward(reward_text(item, resp)) for resp in item["responses"])
        assert r.scores == pytest.approx([r0, r1], abs=ATOL)
        assert r.probs[0] == pytest.approx(1 / (1 + math.exp(-(r0 - r1))), abs=ATOL)
        assert math.isclose(sum(r.probs), 1.0, abs_tol=1e-12)
        assert r.choice == (0 if r0 > r1 else 1)
        assert r.swap_consistent is None
        assert r.ranking is None
    assert reward_judge.name == tiny_reward_model_path.name


def test_reward_ranks_a_slate_by_reward(tiny_reward_model_path):
    reward_judge = load_judge(JudgeConfig(model=str(tiny_reward_model_path), backend="reward"))
    reference = Reference(tiny_reward_model_path, transformers.AutoModelForSequenceClassification)
    r = reward_judge.judge_items([SLATE])[0]
    rewards = [reference.reward(reward_text(SLATE, resp)) for resp in SLATE["responses"]]
    assert r.ranking == sorted(range(4), key=lambda i: -rewards[i])
    exps = [math.exp(x) for x in rewards]
    assert r.probs == pytest.approx([e / sum(exps) for e in exps], abs=ATOL)
