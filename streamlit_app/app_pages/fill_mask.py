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
    table = pd.DataFrame({"word": [f.word for f in fills], "score": [f.score for f in fills]})
    st.subheader("Most likely words")
    st.bar_chart(table, x="word", y="score", horizontal=True, sort="-score")
    for fill in fills:
        st.markdown(f"- **{fill.score:.1%}** {fill.sequence}")
elif fills == []:
    st.info("The model proposed no words for this sentence.")
