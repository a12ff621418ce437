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
