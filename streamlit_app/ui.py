"""Streamlit pieces shared by the pages."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence

import altair as alt
import pandas as pd
import streamlit as st

import app_log
import demos
from backends import BackendError, TokenAttribution

log = app_log.logger("ui")


def backend_name(variable: str) -> str:
    """The backend a page talks to; stops the page if its variable is unset.

    Home.py only registers pages whose variable is set, so this stop is for a
    page script run on its own.
    """
    name = os.environ.get(variable, "").strip()
    if not name:
        page = next((demo.title for demo in demos.DEMOS if demo.variable == variable), "a page")
        log.warning("%s: the environment variable %s is not set, so the page has no model to call", page, variable)
        st.info("The model behind this page is not available right now. Please come back later.")
        st.stop()
    return name


def show_backend_error(error: BackendError) -> None:
    """The visitor's side of a failed call; the operator's side is already in the app's log.

    Text that came from a backend is shown with `st.code`, which displays it
    verbatim: neither Markdown nor HTML in it is ever rendered.
    """
    if error.kind == "cold":
        st.warning(error.message, icon=":material/hourglass_top:")
    elif error.kind == "rejected":
        st.warning(error.message)
        if error.reason:
            with st.expander("What the model said"):
                st.code(error.reason, language=None, wrap_lines=True)
    else:
        st.error(error.message)
        if error.reply is not None:
            with st.expander("Reply (not JSON)"):
                st.code(error.reply, language=None, wrap_lines=True)


def score_chart(data: pd.DataFrame, category: str, score: str, *, highest_first: bool = True) -> None:
    """Horizontal bars of probabilities, on a fixed 0-100 % axis so that small and large scores look it."""
    chart = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X(
                field=score, type="quantitative", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"), title=score
            ),
            y=alt.Y(
                field=category,
                type="nominal",
                sort=alt.EncodingSortField(field=score, order="descending" if highest_first else "ascending"),
                title=None,
            ),
            tooltip=[
                alt.Tooltip(field=category, type="nominal"),
                alt.Tooltip(field=score, type="quantitative", format=".1%"),
            ],
        )
    )
    st.altair_chart(chart)


def highlighted_text_html(text: str, tokens: Sequence[TokenAttribution], label: str) -> str:
    """`text` as HTML, each token shaded by its attribution towards `label`.

    Green supports the label, red argues against it; the strongest token gets
    the strongest shade. The text between tokens is kept as typed, and
    everything is escaped, so user input cannot inject markup.
    """
    strongest = max((abs(t.attributions.get(label, 0.0)) for t in tokens), default=0.0) or 1.0
    parts: list[str] = []
    position = 0
    for token in sorted(tokens, key=lambda t: t.start):
        if token.start < position:  # overlapping spans: keep the text intact
            continue
        parts.append(html.escape(text[position : token.start]))
        score = token.attributions.get(label, 0.0)
        rgb = "22, 163, 74" if score >= 0 else "220, 38, 38"
        alpha = round(0.75 * abs(score) / strongest, 3)
        parts.append(
            f'<span style="background-color: rgba({rgb}, {alpha}); border-radius: 0.25rem; padding: 0 0.1rem" '
            f'title="{score:+.3f}">{html.escape(text[token.start : token.end])}</span>'
        )
        position = token.end
    parts.append(html.escape(text[position:]))
    return f'<p style="font-size: 1.15rem; line-height: 2">{"".join(parts)}</p>'
