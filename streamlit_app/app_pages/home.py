import streamlit as st

import demos

st.title(demos.app_title())

available = demos.configured_demos()
if not available:
    variables = ", ".join(f"`{demo.variable}`" for demo in demos.DEMOS)
    st.info(
        f"No model backend is configured yet. Each page appears once its environment variable "
        f"({variables}) names a deployed SageMaker endpoint or Lambda function; `provision up` sets them."
    )
else:
    st.write("Try the models behind this app:")
    for demo in available:
        with st.container(border=True):
            st.page_link(demo.script, label=demo.title, icon=demo.icon)
            st.caption(demo.summary)
