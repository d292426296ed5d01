"""Label scores and per-token occlusion attributions for a text classifier.

The attribution method is occlusion: each token in turn is replaced by the
tokenizer's mask token (or unknown/padding token when there is no mask
token), and a token's attribution towards a label is how much the label's
probability drops when that token is hidden:

    attribution(token, label) = p(label | text) - p(label | text with token hidden)

Positive values mean the token supports the label, negative values mean it
argues against it. Occlusion needs nothing from the model but its
predictions, so it works for any sequence classifier, at the price of one
extra sequence per token (batched). That cost is why inputs are truncated to
``MAX_TOKENS``.

Everything here except ``HuggingFaceClassifier`` and
``load_huggingface_classifier`` is plain Python, so it can be tested with a
stub classifier; torch and transformers are imported only when a real model
is loaded.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

ATTRIBUTION_METHOD = "occlusion"

# SageMaker unpacks a model_data_url archive here. A model found here wins over
# HUB_MODEL_NAME, so a fine-tuned model can ship as model data.
SAGEMAKER_MODEL_DIR = Path("/opt/ml/model")

DEFAULT_MAX_TOKENS = 128
DEFAULT_BATCH_SIZE = 32

logger = logging.getLogger(__name__)


class ModelConfigurationError(RuntimeError):
    """The container was not told which model to serve."""


@dataclass(frozen=True)
class Encoding:
    """A tokenized text, truncated to what the classifier accepts."""

    token_ids: list[int]
    # Character span of each token in the original text; ignored for special tokens.
    offsets: list[tuple[int, int]]
    # True for tokens the tokenizer added ([CLS], [SEP], <s>, ...), which are never occluded.
    special: list[bool]
    truncated: bool


class TextClassifier(Protocol):
    """What the explainer needs from a model. Tests implement it with a stub."""

    @property
    def labels(self) -> Sequence[str]: ...

    @property
    def occlusion_token_id(self) -> int: ...

    def encode(self, text: str) -> Encoding: ...

    def predict(self, batch: Sequence[Sequence[int]]) -> list[list[float]]:
        """Probabilities per label (in ``labels`` order) for each token-id sequence."""
        ...


def classify(
    classifier: TextClassifier, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE
) -> list[dict[str, Any]]:
    """Label scores, best first, for each text."""
    encodings = [classifier.encode(text) for text in texts]
    probabilities = _predict_in_batches(classifier, [e.token_ids for e in encodings], batch_size)
    return [
        {"labels": _ranked_labels(classifier.labels, probs), "truncated": encoding.truncated}
        for encoding, probs in zip(encodings, probabilities, strict=True)
    ]


def explain(classifier: TextClassifier, text: str, batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, Any]:
    """Label scores plus, for every token of ``text``, its occlusion attribution towards each label."""
    encoding = classifier.encode(text)
    occludable = [i for i, special in enumerate(encoding.special) if not special]

    variants = [encoding.token_ids]
    for position in occludable:
        occluded = list(encoding.token_ids)
        occluded[position] = classifier.occlusion_token_id
        variants.append(occluded)

    original, *occluded_probabilities = _predict_in_batches(classifier, variants, batch_size)
    labels = list(classifier.labels)

    tokens = []
    for position, probs in zip(occludable, occluded_probabilities, strict=True):
        start, end = encoding.offsets[position]
        tokens.append(
            {
                "token": text[start:end],
                "start": start,
                "end": end,
                "attributions": {label: original[j] - probs[j] for j, label in enumerate(labels)},
            }
        )

    return {
        "labels": _ranked_labels(labels, original),
        "tokens": tokens,
        "attribution_method": ATTRIBUTION_METHOD,
        "truncated": encoding.truncated,
    }


def _ranked_labels(labels: Sequence[str], probabilities: Sequence[float]) -> list[dict[str, Any]]:
    ranked = sorted(zip(labels, probabilities, strict=True), key=lambda pair: pair[1], reverse=True)
    return [{"label": label, "score": float(score)} for label, score in ranked]


def _predict_in_batches(
    classifier: TextClassifier, sequences: Sequence[Sequence[int]], batch_size: int
) -> list[list[float]]:
    # Bounded batches keep peak memory flat however long the text is.
    probabilities: list[list[float]] = []
    for start in range(0, len(sequences), batch_size):
        probabilities.extend(classifier.predict(sequences[start : start + batch_size]))
    return probabilities


class LazyClassifier:
    """Loads the classifier on first use, once, from any thread.

    A failed load is not remembered: the next request tries again, so a
    transient error (the Hub being unreachable for a moment) heals itself.
    """

    def __init__(self, load: Callable[[], TextClassifier]):
        self._load = load
        self._lock = threading.Lock()
        self._classifier: TextClassifier | None = None

    @property
    def loaded(self) -> bool:
        return self._classifier is not None

    def get(self) -> TextClassifier:
        if self._classifier is None:
            with self._lock:
                if self._classifier is None:
                    self._classifier = self._load()
        return self._classifier

    def warm_up_in_background(self) -> None:
        """Start loading now so the first invocation after a cold start waits less."""

        def warm_up() -> None:
            try:
                self.get()
            except Exception:  # the next invocation retries and reports it
                logger.exception("Loading the model in the background failed")

        threading.Thread(target=warm_up, name="model-warm-up", daemon=True).start()


def model_source(environ: Mapping[str, str] | None = None, model_dir: Path | None = None) -> str:
    """Where to load the model from: SageMaker model data if present, else ``HUB_MODEL_NAME``."""
    environ = os.environ if environ is None else environ
    model_dir = SAGEMAKER_MODEL_DIR if model_dir is None else model_dir
    if (model_dir / "config.json").is_file():
        return str(model_dir)
    hub_model_name = environ.get("HUB_MODEL_NAME", "").strip()
    if not hub_model_name:
        raise ModelConfigurationError(
            f"No model to serve: set HUB_MODEL_NAME to a Hugging Face text-classification model, "
            f"or deploy model data containing config.json (unpacked into {model_dir})."
        )
    return hub_model_name


class HuggingFaceClassifier:
    """A ``transformers`` sequence classifier behind the ``TextClassifier`` protocol."""

    def __init__(self, tokenizer: Any, model: Any, max_tokens: int = DEFAULT_MAX_TOKENS):
        if not tokenizer.is_fast:
            # Attributions are reported as character spans, which only fast tokenizers provide.
            raise ModelConfigurationError(
                f"{type(tokenizer).__name__} is not a fast tokenizer; character offsets need one."
            )
        self._tokenizer = tokenizer
        self._model = model
        self._max_tokens = min(max_tokens, tokenizer.model_max_length)
        config = model.config
        self._labels = [str(config.id2label[i]) for i in range(config.num_labels)]
        self._multi_label = getattr(config, "problem_type", None) == "multi_label_classification"
        candidates = (tokenizer.mask_token_id, tokenizer.unk_token_id, tokenizer.pad_token_id)
        self._occlusion_token_id = next(token_id for token_id in candidates if token_id is not None)

    @property
    def labels(self) -> Sequence[str]:
        return self._labels

    @property
    def occlusion_token_id(self) -> int:
        return self._occlusion_token_id

    def encode(self, text: str) -> Encoding:
        encoded = self._tokenizer(
            text,
            truncation=True,
            max_length=self._max_tokens,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        offsets = [(int(start), int(end)) for start, end in encoded["offset_mapping"]]
        special = [bool(flag) for flag in encoded["special_tokens_mask"]]
        last_end = max((end for (_, end), is_special in zip(offsets, special, strict=True) if not is_special), default=0)
        return Encoding(
            token_ids=list(encoded["input_ids"]),
            offsets=offsets,
            special=special,
            truncated=last_end < len(text.rstrip()),
        )

    def predict(self, batch: Sequence[Sequence[int]]) -> list[list[float]]:
        import torch

        padded = self._tokenizer.pad({"input_ids": [list(ids) for ids in batch]}, return_tensors="pt")
        with torch.inference_mode():
            logits = self._model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
        probabilities = torch.sigmoid(logits) if self._multi_label else torch.softmax(logits, dim=-1)
        return probabilities.tolist()


def load_huggingface_classifier() -> HuggingFaceClassifier:
    """Load the configured model; the only place torch and transformers are imported."""
    source = model_source()
    max_tokens = int(os.environ.get("MAX_TOKENS", DEFAULT_MAX_TOKENS))
    logger.info("Loading text classifier from %s", source)

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForSequenceClassification.from_pretrained(source)
    model.eval()
    logger.info("Loaded %s with labels %s", source, list(model.config.id2label.values()))
    return HuggingFaceClassifier(tokenizer, model, max_tokens=max_tokens)
