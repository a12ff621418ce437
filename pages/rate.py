"""Rate: one served item at a time, pairwise or a slate; the page is ui/rate_page.py."""

from ui import common, rate_page

common.require_app_entry()  # a page runs only inside app.py's navigation

# The page lives in a module: imported once per process, while a page script's source is
# compiled again by every AppTest run (Streamlit's AST "magic" pass: ~2/3 of a rerun there).
rate_page.show()
