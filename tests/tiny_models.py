"""Build tiny random-weight models on disk for the judge and worker tests.

Nothing is downloaded: the tokenizer is trained here with ``tokenizers`` and the
models are randomly initialised GPT-2s with a fixed torch seed, then saved with
``save_pretrained`` so the tests go through the real loading code.

Use the session fixtures (``tiny_causal_lm_path``, ``tiny_reward_model_path``) or
call ``build_tiny_causal_lm(path)`` / ``build_tiny_reward_model(path)`` directly.
"""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SEED = 1234
# A larger init range than GPT-2's 0.02 so random logits are far from uniform and
# the two display orders give visibly different probabilities.
INITIALIZER_RANGE = 0.4
VOCAB_SIZE = 400
N_POSITIONS = 512

# A minimal jinja chat template, close to what instruction-tuned tokenizers ship.
SIMPLE_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<eos>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_CORPUS = [
    "You are comparing responses to the same conversation.",
    "Which response is better? Answer with A or B, or tie if they are equally good.",
    "Answer: A",
    "Answer: B",
    "Answer: tie",
    "A B tie A B tie C D E F G H I J",
    "[Response A] [Response B] [Response C] [Conversation]",
    "User: What is the capital of France? Assistant: Paris is the capital of France.",
    "The quick brown fox jumps over the lazy dog.",
    "Write a short poem about the sea. The sea is blue and wide.",
    "Explain why the sky is blue. Rayleigh scattering makes short wavelengths scatter more.",
    "Reason: the first response is more accurate and more helpful.",
]


def build_tiny_tokenizer():
    """Train a small byte-level BPE tokenizer and wrap it for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 3, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<eos>",
        model_max_length=N_POSITIONS,
    )


def _gpt2_config(tokenizer, **extra):
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=N_POSITIONS,
        n_layer=2,
        n_head=2,
        n_embd=32,
        initializer_range=INITIALIZER_RANGE,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        **extra,
    )


def build_tiny_causal_lm(path, chat_template=None) -> Path:
    """Save a tiny random GPT-2 causal LM and its tokenizer to ``path``.

    Parameters
    ----------
    path : directory to write (created if missing).
    chat_template : optional jinja template stored on the tokenizer.

    Returns
    -------
    The directory, ready for ``JudgeConfig(model=str(path))``.
    """
    import torch
    from transformers import GPT2LMHeadModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    torch.manual_seed(SEED)
    model = GPT2LMHeadModel(_gpt2_config(tokenizer))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_reward_model(path) -> Path:
    """Save a tiny random ``GPT2ForSequenceClassification`` (num_labels=1) to ``path``."""
    import torch
    from transformers import GPT2ForSequenceClassification

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(SEED + 1)
    model = GPT2ForSequenceClassification(_gpt2_config(tokenizer, num_labels=1))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_causal_lm_path(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-causal-lm"))


@pytest.fixture(scope="session")
def tiny_chat_lm_path(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return build_tiny_causal_lm(
        tmp_path_factory.mktemp("tiny-chat-lm"), chat_template=SIMPLE_CHAT_TEMPLATE
    )


@pytest.fixture(scope="session")
def tiny_reward_model_path(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return build_tiny_reward_model(tmp_path_factory.mktemp("tiny-reward"))
