"""Streamlit pieces shared by the pages."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence

import altair as alt
import pandas as pd
import streamlit as st

from backends import BackendError, TokenAttribution


def backend_name(variable: str) -> str:
    """The backend a page talks to; stops the page if its variable is unset.

    Home.py only registers pages whose variable is set, so this stop is for a
    page script run on its own.
    """
    name = os.environ.get(variable, "").strip()
    if not name:
        st.error(f"This page needs the environment variable `{variable}`, which is not set.")
        st.stop()
    return name


def show_backend_error(error: BackendError) -> None:
    if error.kind in ("cold", "rejected"):
        st.warning(error.message, icon=":material/hourglass_top:" if error.kind == "cold" else None)
    else:
        st.error(error.message)
    with st.expander("Details"):
        st.code(error.detail, language=None, wrap_lines=True)


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
