"""prefstore.edits: diffs, the edit base, example picks and the stored report."""

from prefstore import edits, store


def test_unified_diff_plain_text():
    assert edits.unified_diff("a\nb\n", "a\nc") == (
        "--- response\n+++ edited\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n")
    assert edits.unified_diff("same", "same") == ""
    # Markup is text in, text out.
    assert "+<script>alert(1)</script>\n" in edits.unified_diff("", "<script>alert(1)</script>")


def test_edit_base_follows_edit_stats():
    texts = {0: "hello world", 1: "goodbye"}
    assert edits.edit_base("choice", 1, "hello world!", texts) == 1
    assert edits.edit_base("tie", None, "hello world!", texts) == 0
    assert edits.edit_base("both_bad", None, "goodbye!", texts) == 1
    assert edits.edit_base("tie", None, "x", {}) is None


def test_example_ids_spread_over_distances():
    per = [{"id": i, "distance": d} for i, d in enumerate([9, 1, 5, 3, 7, 2, 8], start=1)]
    assert edits.example_ids(per, k=3) == [2, 3, 1]  # distances 1, 5, 9
    assert edits.example_ids(per[:2], k=3) == [2, 1]


def test_refresh_edit_report(db):
    project = store.create_project(db, "p", "pairwise")
    [item] = store.insert_items(db, project["id"], [{
        "external_id": "q", "prompt": "p",
        "responses": [{"text": "abc", "system": "a"}, {"text": "xyz", "system": "b"}]}])
    rater, _ = store.create_rater(db, "r")
    for n, edited in enumerate(["abcd", None, "abc"]):
        store.submit_judgment(db, item_id=item, rater_id=rater["id"], submission_id=str(n),
                                outcome="choice", choice=0, edited=edited)
    edits.refresh_edit_report(db, project["id"])
    report = store.latest_report(db, project["id"], name="edits", kind="all")["result"]
    assert (report["n_judgments"], report["n_edited"], report["distances"]) == (3, 1, [1])
    assert report["share_edited"] == 1 / 3
    [example] = edits.edit_examples(db, report["examples"])
    assert (example["rater"], example["item"], example["response"]) == ("r", "q", 0)
    assert example["diff"] == "--- response\n+++ edited\n@@ -1 +1 @@\n-abc\n+abcd\n"
