import streamlit as st

import app_log
import demos

st.title(demos.app_title())

available = demos.configured_demos()
if not available:
    # Visitors cannot fix this; the operator reads the log.
    app_log.logger("home").warning(
        "no model is configured: none of the environment variables %s is set. Each page appears once its "
        "variable names a deployed SageMaker endpoint or Lambda function (the config's environment_variable_name).",
        ", ".join(demo.variable for demo in demos.DEMOS),
    )
    st.info("No models are available right now. Please come back later.")
else:
    st.write("Try the models behind this app:")
    for demo in available:
        with st.container(border=True):
            st.page_link(demo.script, label=demo.title, icon=demo.icon)
            st.caption(demo.summary)
