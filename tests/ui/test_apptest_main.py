"""An AppTest must not leave its script as ``__main__`` for later tests.

Spawned children (soak writers, storage writers) re-run ``__main__`` before
their target. After an AppTest that is the app script, run in bare mode: in
CI two of sixteen writers died that way. ``main_module_restored`` in
tests/conftest.py puts the real one back after every test; these two tests,
in this order, check it.
"""

import multiprocessing.spawn
import sys

from streamlit.testing.v1 import AppTest

ORIGINAL_MAIN = sys.modules["__main__"]  # taken at collection, before any test ran


def test_an_app_test_installs_its_script_as_main():
    at = AppTest.from_string("import streamlit as st\nst.write('hello')").run()
    assert at.markdown[0].value == "hello"
    assert sys.modules["__main__"] is not ORIGINAL_MAIN


def test_the_next_test_and_its_spawned_children_see_the_real_main():
    assert sys.modules["__main__"] is ORIGINAL_MAIN
    data = multiprocessing.spawn.get_preparation_data("writer")
    assert data.get("init_main_from_path") == getattr(ORIGINAL_MAIN, "__file__", None) or (
        "init_main_from_path" not in data)
