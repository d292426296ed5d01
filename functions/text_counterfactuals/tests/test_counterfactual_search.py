"""The pure parts of the counterfactual search: word choice, candidate texts, ranking."""

from __future__ import annotations

import pytest

from counterfactuals import (
    Candidate,
    Word,
    candidates_from_fills,
    masked_text,
    rank_counterfactuals,
    resolve_label,
    word_support,
    words_in,
    words_to_mask,
)


def token(start, end, positive):
    return {"start": start, "end": end, "attributions": {"POSITIVE": positive, "NEGATIVE": -positive}}


def test_words_skip_punctuation_and_keep_inner_apostrophes():
    assert [w.text for w in words_in("Don't stop -- it's great, 10/10!")] == [
        "Don't",
        "stop",
        "it's",
        "great",
        "10",
        "10",
    ]


def test_a_word_split_into_sub_word_tokens_gets_their_summed_support():
    text = "an unbelievable ride"
    tokens = [token(0, 2, 0.0), token(3, 5, 0.2), token(5, 15, 0.3), token(16, 20, 0.1)]

    support = {word.text: score for word, score in word_support(text, tokens, "POSITIVE")}

    assert support == {"an": 0.0, "unbelievable": pytest.approx(0.5), "ride": pytest.approx(0.1)}


def test_the_strongest_supporting_words_are_masked_and_opposing_ones_never():
    text = "great cast but a dull plot"
    tokens = [
        token(0, 5, 0.5),
        token(6, 10, 0.1),
        token(11, 14, 0.0),
        token(15, 16, 0.0),
        token(17, 21, -0.6),
        token(22, 26, 0.2),
    ]

    assert [w.text for w in words_to_mask(text, tokens, "POSITIVE", max_words=2)] == ["great", "plot"]
    assert [w.text for w in words_to_mask(text, tokens, "POSITIVE", max_words=10)] == ["great", "plot", "cast"]
    assert [w.text for w in words_to_mask(text, tokens, "NEGATIVE", max_words=10)] == ["dull"]


def test_masking_replaces_exactly_the_word():
    text = "The film was great."
    [_, _, _, great] = words_in(text)

    assert masked_text(text, great, "<mask>") == "The film was <mask>."


def test_fills_become_edits_of_the_original_text():
    text = "Great film , truly."
    word = Word("Great", 0, 5)
    fills = [
        {"token_str": " great", "score": 0.5},  # the original word again: no change
        {"token_str": " terrible", "score": 0.2},  # RoBERTa-style leading space
        {"token_str": "##ly", "score": 0.1},  # a sub-word piece
        {"token_str": " ,", "score": 0.1},  # punctuation
        {"token_str": " awful", "score": 0.05},
        {"token_str": " dull", "score": 0.01},
    ]

    candidates = candidates_from_fills(text, word, fills, max_candidates=2)

    # Capitalisation follows the word replaced; spacing and punctuation are the caller's.
    assert [(c.text, c.replacement, c.fill_score) for c in candidates] == [
        ("Terrible film , truly.", "Terrible", 0.2),
        ("Awful film , truly.", "Awful", 0.05),
    ]
    assert all(c.replaced == word for c in candidates)


def candidate(text, fill_score=0.1):
    return Candidate(text=text, replaced=Word("great", 0, 5), replacement=text.split()[0], fill_score=fill_score)


def test_ranking_keeps_texts_that_lower_the_target_score_lowest_first():
    candidates = [candidate("fine film"), candidate("awful film"), candidate("superb film"), candidate("dull film")]
    scores = [
        {"POSITIVE": 0.7, "NEGATIVE": 0.3},
        {"POSITIVE": 0.1, "NEGATIVE": 0.9},
        {"POSITIVE": 0.99, "NEGATIVE": 0.01},  # pushes towards the label: dropped
        {"POSITIVE": 0.4, "NEGATIVE": 0.6},
    ]

    ranked = rank_counterfactuals(candidates, scores, "POSITIVE", original_target_score=0.95)

    assert [c.candidate.text for c in ranked] == ["awful film", "dull film", "fine film"]
    assert [c.predicted_label for c in ranked] == ["NEGATIVE", "NEGATIVE", "POSITIVE"]
    as_json = ranked[0].to_json("POSITIVE", 0.95)
    assert as_json["flipped"] is True
    assert as_json["score_change"] == pytest.approx(-0.85)
    assert ranked[2].to_json("POSITIVE", 0.95)["flipped"] is False


def test_ranking_breaks_ties_by_fluency_and_drops_duplicate_texts():
    candidates = [candidate("bad film", 0.1), candidate("poor film", 0.3), candidate("bad film", 0.2)]
    scores = [{"POSITIVE": 0.2, "NEGATIVE": 0.8}] * 3

    ranked = rank_counterfactuals(candidates, scores, "POSITIVE", original_target_score=0.9)

    assert [c.candidate.text for c in ranked] == ["poor film", "bad film"]


def test_labels_resolve_exactly_then_ignoring_case():
    assert resolve_label("POSITIVE", ["NEGATIVE", "POSITIVE"]) == "POSITIVE"
    assert resolve_label("positive", ["NEGATIVE", "POSITIVE"]) == "POSITIVE"
    assert resolve_label("neutral", ["NEGATIVE", "POSITIVE"]) is None
