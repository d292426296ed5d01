import pandas as pd
import streamlit as st

import backends
import demos
import ui

endpoint = ui.backend_name("SENTIMENT_UNMASKING_MODEL")
mask = demos.mask_token()

st.title("Fill in the blank")
st.write(
    f"Write a sentence with {mask} where a word is missing; a masked language model proposes the most likely words."
)

with st.form("fill_mask"):
    text = st.text_area("Sentence", value=f"The movie was {mask} and the actors were brilliant.")
    submitted = st.form_submit_button("Fill in", type="primary")

if submitted:
    st.session_state.pop("fills", None)
    if text.count(mask) != 1:
        st.warning(f"Put exactly one {mask} in the sentence, where the missing word goes.")
    else:
        with st.spinner("Asking the model..."):
            try:
                st.session_state["fills"] = backends.fill_mask(endpoint, text)
            except backends.BackendError as error:
                ui.show_backend_error(error)

fills = st.session_state.get("fills")
if fills:
    st.subheader("Most likely words")
    ui.score_chart(pd.DataFrame({"word": [f.word for f in fills], "score": [f.score for f in fills]}), "word", "score")
    st.dataframe(
        pd.DataFrame({"sentence": [f.sequence for f in fills], "score": [f.score for f in fills]}),
        hide_index=True,
        column_config={"score": st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0)},
    )
elif fills == []:
    st.info("The model proposed no words for this sentence.")
