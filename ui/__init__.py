"""Shared Streamlit helpers of the app's pages (the page scripts live in pages/)."""
