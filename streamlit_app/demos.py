"""Which pages the app shows: one per model backend whose environment variable is set.

`provision` sets one variable per SageMaker endpoint and Lambda function,
named by `environment_variable_name` in the config, to that resource's name.
A page whose variable is unset is not registered at all, so it never appears
in the navigation.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_TITLE = "Model playground"


@dataclass(frozen=True)
class Demo:
    variable: str  # environment variable holding the backend's name
    script: str  # page script, relative to Home.py
    title: str
    icon: str
    summary: str


DEMOS = (
    Demo(
        variable="SENTIMENT_EXPLANATIONS_MODEL",
        script="app_pages/explain.py",
        title="Explain a prediction",
        icon=":material/insights:",
        summary="Classify the sentiment of a text and see which words drove the prediction.",
    ),
    Demo(
        variable="SENTIMENT_UNMASKING_MODEL",
        script="app_pages/fill_mask.py",
        title="Fill in the blank",
        icon=":material/edit_note:",
        summary="Let a masked language model propose the missing word of a sentence.",
    ),
    Demo(
        variable="COUNTERFACTUAL_LAMBDA",
        script="app_pages/counterfactual.py",
        title="Counterfactuals",
        icon=":material/swap_horiz:",
        summary="Find small edits to a text that change what the sentiment model thinks of it.",
    ),
)


def configured_demos(environ: Mapping[str, str] | None = None) -> list[Demo]:
    environ = os.environ if environ is None else environ
    return [demo for demo in DEMOS if environ.get(demo.variable, "").strip()]


def app_title(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    return environ.get("APP_TITLE", "").strip() or DEFAULT_TITLE


def mask_token(environ: Mapping[str, str] | None = None) -> str:
    """The fill-mask model's mask token: `<mask>` for RoBERTa models such as distilroberta-base."""
    environ = os.environ if environ is None else environ
    return environ.get("MASK_TOKEN", "").strip() or "<mask>"
