"""The serving container's contract, exercised through Flask's WSGI test client.

A tiny lexicon classifier stands in for the Hugging Face model: "great" pushes
towards POSITIVE, "terrible" towards NEGATIVE, every other word is neutral.
That is enough to check that occlusion attributes the prediction to the
right words, without torch, transformers or a download.
"""

from __future__ import annotations

import json
import math
import re

import pytest

import explainer
import serving

WORD = re.compile(r"\S+")
WEIGHTS = {"great": 3.0, "terrible": -3.0}


class LexiconClassifier:
    labels = ("NEGATIVE", "POSITIVE")
    occlusion_token_id = 0  # stands for [MASK]
    CLS, SEP = 1, 2

    def __init__(self, max_tokens: int = 32):
        self.max_tokens = max_tokens
        self.vocabulary: dict[str, int] = {}
        self.batch_sizes: list[int] = []

    def _id(self, word: str) -> int:
        return self.vocabulary.setdefault(word.lower(), 10 + len(self.vocabulary))

    def encode(self, text: str) -> explainer.Encoding:
        words = list(WORD.finditer(text))
        kept = words[: self.max_tokens - 2]
        return explainer.Encoding(
            token_ids=[self.CLS] + [self._id(m.group()) for m in kept] + [self.SEP],
            offsets=[(0, 0)] + [m.span() for m in kept] + [(0, 0)],
            special=[True] + [False] * len(kept) + [True],
            truncated=len(kept) < len(words),
        )

    def predict(self, batch):
        self.batch_sizes.append(len(batch))
        weight_of = {token_id: WEIGHTS.get(word, 0.0) for word, token_id in self.vocabulary.items()}
        results = []
        for ids in batch:
            positive = 1 / (1 + math.exp(-sum(weight_of.get(i, 0.0) for i in ids)))
            results.append([1 - positive, positive])
        return results


class CountingLoader:
    def __init__(self, classifier=None, failures: int = 0):
        self.classifier = classifier or LexiconClassifier()
        self.failures = failures
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise OSError("Hub unreachable")
        return self.classifier


def invoke(client, body, content_type="application/json"):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/invocations", data=data, content_type=content_type)


@pytest.fixture
def loader():
    return CountingLoader()


@pytest.fixture
def client(loader):
    return serving.create_app(loader).test_client()


def test_ping_answers_before_any_model_is_loaded(client, loader):
    response = client.get("/ping")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "model_loaded": False}
    assert loader.calls == 0


def test_explains_a_text_with_scores_and_token_attributions(client):
    text = "What a great  film"
    response = invoke(client, {"inputs": text})

    assert response.status_code == 200
    body = response.get_json()
    assert [entry["label"] for entry in body["labels"]] == ["POSITIVE", "NEGATIVE"]
    assert body["labels"][0]["score"] == pytest.approx(1 / (1 + math.exp(-3)))
    assert sum(entry["score"] for entry in body["labels"]) == pytest.approx(1.0)
    assert body["attribution_method"] == "occlusion"
    assert body["truncated"] is False

    # Every token maps back onto the text the caller sent, special tokens excluded.
    assert [t["token"] for t in body["tokens"]] == ["What", "a", "great", "film"]
    assert all(text[t["start"] : t["end"]] == t["token"] for t in body["tokens"])

    by_token = {t["token"]: t["attributions"] for t in body["tokens"]}
    assert by_token["great"]["POSITIVE"] > 0.4
    assert by_token["great"]["NEGATIVE"] == pytest.approx(-by_token["great"]["POSITIVE"])
    assert by_token["film"] == {"POSITIVE": pytest.approx(0.0), "NEGATIVE": pytest.approx(0.0)}


def test_a_word_against_the_label_gets_a_negative_attribution(client):
    body = invoke(client, {"inputs": "great but terrible ending"}).get_json()

    by_token = {t["token"]: t["attributions"]["POSITIVE"] for t in body["tokens"]}
    assert by_token["great"] > 0
    assert by_token["terrible"] < 0


def test_a_list_of_texts_without_attributions_returns_only_scores(client):
    response = invoke(client, {"inputs": ["great", "terrible"], "parameters": {"attributions": False}})

    assert response.status_code == 200
    body = response.get_json()
    assert [result["labels"][0]["label"] for result in body] == ["POSITIVE", "NEGATIVE"]
    assert all("tokens" not in result for result in body)


def test_a_list_of_texts_gets_one_explanation_each(client):
    body = invoke(client, {"inputs": ["great", "terrible"]}).get_json()

    assert [[t["token"] for t in result["tokens"]] for result in body] == [["great"], ["terrible"]]


def test_the_model_is_loaded_once_and_reused(client, loader):
    invoke(client, {"inputs": "great"})
    invoke(client, {"inputs": "terrible"})

    assert loader.calls == 1
    assert client.get("/ping").get_json()["model_loaded"] is True


def test_long_texts_are_truncated_and_say_so():
    loader = CountingLoader(LexiconClassifier(max_tokens=4))
    client = serving.create_app(loader).test_client()

    body = invoke(client, {"inputs": "one two great four"}).get_json()

    assert body["truncated"] is True
    assert [t["token"] for t in body["tokens"]] == ["one", "two"]


def test_occlusion_batches_never_exceed_the_batch_size():
    loader = CountingLoader()
    client = serving.create_app(loader, batch_size=3).test_client()

    body = invoke(client, {"inputs": "a b c d great f g"}).get_json()

    assert len(body["tokens"]) == 7
    assert max(loader.classifier.batch_sizes) <= 3
    assert sum(loader.classifier.batch_sizes) == 8  # the text itself plus one occlusion per token


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        ({"inputs": "great"}, "text/plain", 415, "Content-Type must be application/json"),
        ("{not json", "application/json", 400, "not valid JSON"),
        (b"\xff\xfe\xfa", "application/json", 400, "not valid JSON"),
        ({"text": "great"}, "application/json", 400, '"inputs"'),
        ({"inputs": "   "}, "application/json", 400, "non-empty text"),
        ({"inputs": []}, "application/json", 400, "non-empty"),
        ({"inputs": ["great", 3]}, "application/json", 400, "non-empty text"),
        ({"inputs": "great", "parameters": {"attributions": "no"}}, "application/json", 400, "true or false"),
        ({"inputs": ["t"] * 65}, "application/json", 413, "At most 64 texts"),
    ],
)
def test_bad_requests_get_a_clear_json_error_and_do_not_load_the_model(
    client, loader, body, content_type, status, message
):
    response = invoke(client, body, content_type=content_type)

    assert response.status_code == status
    assert message in response.get_json()["error"]
    assert loader.calls == 0


def test_other_routes_and_methods_answer_in_json(client):
    response = client.get("/invocations")

    assert response.status_code == 405
    assert "error" in response.get_json()


def test_a_failed_model_load_is_reported_and_retried_on_the_next_request():
    loader = CountingLoader(failures=1)
    client = serving.create_app(loader).test_client()

    first = invoke(client, {"inputs": "great"})
    second = invoke(client, {"inputs": "great"})

    assert first.status_code == 500
    assert "could not be loaded: Hub unreachable" in first.get_json()["error"]
    assert second.status_code == 200
    assert loader.calls == 2


def test_without_a_configured_model_invocations_explain_what_to_set(monkeypatch, tmp_path):
    monkeypatch.delenv("HUB_MODEL_NAME", raising=False)
    monkeypatch.setattr(explainer, "SAGEMAKER_MODEL_DIR", tmp_path)
    # The real loader: it must fail on configuration before importing transformers.
    client = serving.create_app(explainer.load_huggingface_classifier).test_client()

    response = invoke(client, {"inputs": "great"})

    assert response.status_code == 500
    assert "set HUB_MODEL_NAME" in response.get_json()["error"]


def test_model_data_unpacked_by_sagemaker_wins_over_the_hub_name(tmp_path):
    assert explainer.model_source({"HUB_MODEL_NAME": "org/model"}, model_dir=tmp_path) == "org/model"

    (tmp_path / "config.json").write_text("{}")

    assert explainer.model_source({"HUB_MODEL_NAME": "org/model"}, model_dir=tmp_path) == str(tmp_path)
