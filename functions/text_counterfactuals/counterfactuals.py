"""Counterfactual search without any I/O: which words to change, into what, and which results matter.

The search, given a text and a label the classifier gives it:

1. sum the classifier's per-token attributions towards the label over each
   word, and keep the words that support the label most (``words_to_mask``);
2. mask each of those words and let a masked language model propose
   replacements (``candidates_from_fills``): fluent edits, one word at a time;
3. classify every candidate text and keep the ones that lower the label's
   score, strongest effect first (``rank_counterfactuals``).

``app.py`` does the endpoint calls in between.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# A word: letters or digits, with inner apostrophes ("don't", "l'amour").
# Punctuation and whitespace around it are never masked or replaced.
WORD_PATTERN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


@dataclass(frozen=True)
class Word:
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Candidate:
    text: str
    replaced: Word
    replacement: str
    fill_score: float  # the language model's confidence in the replacement


@dataclass(frozen=True)
class Counterfactual:
    candidate: Candidate
    label_scores: dict[str, float]
    target_score: float
    predicted_label: str

    def to_json(self, target_label: str, original_target_score: float) -> dict[str, Any]:
        return {
            "text": self.candidate.text,
            "replaced": self.candidate.replaced.text,
            "replacement": self.candidate.replacement,
            "target_score": self.target_score,
            "score_change": self.target_score - original_target_score,
            "predicted_label": self.predicted_label,
            "flipped": self.predicted_label != target_label,
            "label_scores": self.label_scores,
            "fill_score": self.candidate.fill_score,
        }


def words_in(text: str) -> list[Word]:
    return [Word(m.group(), m.start(), m.end()) for m in WORD_PATTERN.finditer(text)]


def word_support(text: str, tokens: Iterable[Mapping[str, Any]], label: str) -> list[tuple[Word, float]]:
    """Each word with the summed attribution towards ``label`` of the tokens inside it.

    Tokens are the explanations endpoint's ``{"start", "end", "attributions"}``
    entries; a word split into several sub-word tokens gets their sum.
    """
    words = words_in(text)
    support = [0.0] * len(words)
    for token in tokens:
        start, end = int(token["start"]), int(token["end"])
        score = float(token["attributions"].get(label, 0.0))
        for index, word in enumerate(words):
            if start < word.end and word.start < end:  # overlap
                support[index] += score
    return list(zip(words, support, strict=True))


def words_to_mask(text: str, tokens: Iterable[Mapping[str, Any]], label: str, max_words: int) -> list[Word]:
    """The words that most support ``label``, strongest first; words against it are never picked."""
    supporting = [(word, score) for word, score in word_support(text, tokens, label) if score > 0]
    supporting.sort(key=lambda pair: (-pair[1], pair[0].start))
    return [word for word, _ in supporting[:max_words]]


def masked_text(text: str, word: Word, mask_token: str) -> str:
    return text[: word.start] + mask_token + text[word.end :]


def candidates_from_fills(
    text: str, word: Word, fills: Sequence[Mapping[str, Any]], max_candidates: int
) -> list[Candidate]:
    """Turn fill-mask predictions for ``word``'s position into edited texts.

    Fills are the Hugging Face fill-mask answer (``token_str``, ``score``),
    best first. The replacement goes into the caller's own text rather than
    taking the model's ``sequence``, which may be re-tokenized, lower-cased or
    re-spaced. Fills that are not words, sub-word pieces, or the original word
    again are skipped.
    """
    candidates: list[Candidate] = []
    seen = {word.text.casefold()}
    for fill in fills:
        replacement = str(fill.get("token_str", "")).strip()
        if not WORD_PATTERN.fullmatch(replacement) or replacement.casefold() in seen:
            continue
        seen.add(replacement.casefold())
        if word.text[:1].isupper():
            replacement = replacement[:1].upper() + replacement[1:]
        edited = text[: word.start] + replacement + text[word.end :]
        candidates.append(Candidate(edited, word, replacement, float(fill.get("score", 0.0))))
        if len(candidates) == max_candidates:
            break
    return candidates


def rank_counterfactuals(
    candidates: Sequence[Candidate],
    label_scores: Sequence[Mapping[str, float]],
    target_label: str,
    original_target_score: float,
) -> list[Counterfactual]:
    """Candidates that lower the target label's score, lowest score first.

    ``label_scores[i]`` is the classifier's ``{label: score}`` for
    ``candidates[i]``. Ties go to the edit the language model found more natural.
    """
    kept: dict[str, Counterfactual] = {}
    for candidate, scores in zip(candidates, label_scores, strict=True):
        target_score = float(scores[target_label])
        if target_score >= original_target_score or candidate.text in kept:
            continue
        kept[candidate.text] = Counterfactual(
            candidate=candidate,
            label_scores={label: float(score) for label, score in scores.items()},
            target_score=target_score,
            predicted_label=max(scores, key=scores.__getitem__),
        )
    return sorted(kept.values(), key=lambda c: (c.target_score, -c.candidate.fill_score))


def resolve_label(requested: str, labels: Iterable[str]) -> str | None:
    """The classifier's spelling of ``requested``, matched exactly, else ignoring case."""
    labels = list(labels)
    if requested in labels:
        return requested
    matches = [label for label in labels if label.casefold() == requested.casefold()]
    return matches[0] if len(matches) == 1 else None
