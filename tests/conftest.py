import os

import pytest

from prefstore import storage
from tests import pandalm

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tests start workers themselves; the app must not spawn one per test.
os.environ["PREFSTORE_AUTOSTART_WORKER"] = "0"


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "test.db"


@pytest.fixture
def db(db_path):
    handle = storage.connect(db_path)
    yield handle
    handle.close()


@pytest.fixture(scope="session")
def pandalm_db_path(tmp_path_factory):
    """A database holding the imported PandaLM test set plus GPT-3.5's labels (read-only)."""
    from prefstore import importing

    path = tmp_path_factory.mktemp("pandalm") / "pandalm.db"
    db = storage.connect(path)
    items = pandalm.write_jsonl(path.parent / "items.jsonl", pandalm.item_rows())
    judge = pandalm.write_jsonl(path.parent / "gpt.jsonl", pandalm.gpt_judgment_rows())
    importing.import_items(db, items, "pandalm")
    importing.import_judgments(db, judge, "pandalm", skip_invalid_judgments=True)
    db.close()
    return path
