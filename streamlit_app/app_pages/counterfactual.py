import pandas as pd
import streamlit as st

import backends
import ui

function = ui.backend_name("COUNTERFACTUAL_LAMBDA")

st.title("Counterfactuals")
st.write(
    "Which small edits would change the model's mind? The words that support a label most are swapped, one at a "
    "time, for words a language model finds natural, and the edits that lower that label's score are kept."
)

with st.form("counterfactual"):
    text = st.text_area("Text", value="The movie was great and the soundtrack was fun.")
    target_label = st.text_input("Label to move away from", placeholder="empty: the label the model predicts")
    submitted = st.form_submit_button("Find counterfactuals", type="primary")

if submitted:
    st.session_state.pop("counterfactuals", None)
    if not text.strip():
        st.warning("Write a text first.")
    else:
        with st.spinner("Searching; this asks several models and can take a few seconds..."):
            try:
                st.session_state["counterfactuals"] = backends.find_counterfactuals(
                    function, text, target_label.strip() or None
                )
            except backends.BackendError as error:
                ui.show_backend_error(error)

if "counterfactuals" in st.session_state:
    search = st.session_state["counterfactuals"]
    label = search.target_label
    st.metric(f"{label} score of your text", f"{search.label_scores[label]:.1%}")

    if not search.counterfactuals:
        if search.masked_words:
            st.info(f"No replacement of {', '.join(search.masked_words)} lowered the {label} score.")
        else:
            st.info(f"No word of this text supports {label}, so there is nothing to change.")
    else:
        rows = pd.DataFrame(
            {
                "text": [c.text for c in search.counterfactuals],
                "edit": [f"{c.replaced} → {c.replacement}" for c in search.counterfactuals],
                f"{label} score": [c.target_score for c in search.counterfactuals],
                "prediction": [c.predicted_label for c in search.counterfactuals],
            }
        )
        st.subheader(f"Edits that lower {label}")
        ui.score_chart(rows, "edit", f"{label} score", highest_first=False)
        st.dataframe(
            rows,
            hide_index=True,
            column_config={
                f"{label} score": st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0)
            },
        )
