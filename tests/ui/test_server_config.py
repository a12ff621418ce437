"""The Streamlit settings the app ships with (.streamlit/config.toml)."""

from __future__ import annotations

import tomllib

from tests.ui.conftest import REPO


def shipped() -> dict:
    return tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())


def test_no_full_garbage_collection_after_every_rerun():
    # Streamlit's default gc.collect(2) after each script run cost the server 60-80 ms of CPU
    # per rerun of the rate page (benchmarks/README.md, "Capacity of one app server").
    assert shipped()["runner"] == {"postScriptGC": False}


def test_server_settings_that_guard_raters():
    config = shipped()
    assert {k: config["server"][k] for k in ("enableXsrfProtection", "runOnSave",
                                              "fileWatcherType", "maxUploadSize")} == {
        "enableXsrfProtection": True, "runOnSave": False, "fileWatcherType": "none",
        "maxUploadSize": 50}
    # No parent frame may steer the app by postMessage (and no origin test per message).
    assert config["client"] == {"toolbarMode": "minimal", "showErrorDetails": "none",
                                "allowedOrigins": []}
    assert config["browser"] == {"gatherUsageStats": False}
