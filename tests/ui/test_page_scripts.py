"""The structure that keeps every page inside app.py: checked on the source, file by file."""

import ast
import re

import pytest

from tests.ui.conftest import REPO

PAGE_FILES = sorted((REPO / "pages").glob("*.py"))
UI_SOURCES = [REPO / "app.py", *PAGE_FILES, *sorted((REPO / "ui").glob("*.py"))]


def test_pages_holds_only_the_pages_of_app_py_navigation():
    from ui import navigation

    listed = {navigation.RATE[0], navigation.ADMIN[0]} | {
        spec[0] for spec in navigation.DASHBOARD_PAGES}
    assert {f"pages/{path.name}" for path in PAGE_FILES} == listed


def test_each_page_file_is_named_as_its_url():
    """A fresh server's first visits resolve the URL against pages/ by file name
    (Streamlit's legacy mode, until app.py's st.navigation runs). A file named
    otherwise answers a deep link with a "Page not found" dialog over the page."""
    from streamlit.source_util import page_icon_and_name

    from ui import navigation

    for path, _title, _icon, url_path in (navigation.RATE, *navigation.DASHBOARD_PAGES,
                                          navigation.ADMIN):
        assert page_icon_and_name(REPO / path)[1] == url_path, path


@pytest.mark.parametrize("path", PAGE_FILES, ids=lambda p: p.name)
def test_a_page_script_first_makes_sure_it_runs_inside_app_py(path):
    body = [node for node in ast.parse(path.read_text()).body
            if not isinstance(node, (ast.Import, ast.ImportFrom))
            and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    assert ast.unparse(body[0]) == "common.require_app_entry()"


@pytest.mark.parametrize("path", UI_SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_private_streamlit_api(path):
    # Public: the streamlit namespace, streamlit.errors, the testing and components APIs.
    private = re.findall(r"^\s*(?:from|import) (streamlit\.(?!errors\b|components\b)[\w.]+)",
                         path.read_text(), flags=re.M)
    assert private == []
