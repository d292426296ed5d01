"""Entry point: `streamlit run Home.py`. Registers the home page plus one page per configured backend."""

import streamlit as st

import app_log
import demos

app_log.configure()  # before any page runs, so their records reach stdout and CloudWatch

st.set_page_config(page_title=demos.app_title(), page_icon=":material/psychology:", layout="centered")

pages = [st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True)]
pages += [st.Page(demo.script, title=demo.title, icon=demo.icon) for demo in demos.configured_demos()]

st.navigation(pages).run()
