import pandas as pd
import streamlit as st

import backends
import ui

endpoint = ui.backend_name("SENTIMENT_EXPLANATIONS_MODEL")

st.title("Explain a prediction")
st.write("Classify the sentiment of a text and see which words pushed the model towards, or away from, each label.")

with st.form("explain"):
    text = st.text_area("Text", value="The plot was predictable, but the acting was wonderful.")
    submitted = st.form_submit_button("Explain", type="primary")

if submitted:
    st.session_state.pop("explanation", None)
    if not text.strip():
        st.warning("Write a text to classify first.")
    else:
        with st.spinner("Asking the model..."):
            try:
                st.session_state["explanation"] = (text, backends.explain(endpoint, text))
            except backends.BackendError as error:
                ui.show_backend_error(error)

if "explanation" in st.session_state:
    explained_text, explanation = st.session_state["explanation"]
    predicted = explanation.predicted_label
    confidence = f"{explanation.label_scores[predicted]:.1%} confident"
    st.metric("Prediction", predicted, confidence, delta_color="off", delta_arrow="off")

    scores = pd.DataFrame({"label": list(explanation.label_scores), "score": list(explanation.label_scores.values())})
    ui.score_chart(scores, "label", "score")

    labels = list(explanation.label_scores)
    label = st.selectbox("Show which words support", labels, index=0)
    st.markdown(ui.highlighted_text_html(explained_text, explanation.tokens, label), unsafe_allow_html=True)
    st.caption(
        f"Green words support {label}, red words argue against it; hover for the value. "
        f"Method: {explanation.method or 'unknown'} (how much {label}'s score drops when the word is hidden)."
    )
    if explanation.truncated:
        st.info("The text was too long for the model; only its beginning was explained.")
