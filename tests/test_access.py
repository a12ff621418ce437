import pytest

from prefstore import access, store
from prefstore.errors import AccessDenied, Conflict, InvalidInput

DENIED = "this link is not valid; ask your project admin for a new one"


def test_configured_admin_token_prefers_the_environment():
    assert access.configured_admin_token({"PREFSTORE_ADMIN_TOKEN": " env "},
                                         {"admin_token": "secret"}) == "env"
    assert access.configured_admin_token({}, {"admin_token": "secret"}) == "secret"
    assert access.configured_admin_token({"PREFSTORE_ADMIN_TOKEN": "  "}, None) is None
    assert access.configured_admin_token({}, {}) is None


def test_admin_token_makes_an_admin_who_rates_as_admin(db):
    found = access.resolve(db, "top-secret", admin_token="top-secret")
    assert (found.role, found.mode, found.name, found.is_admin) == (
        "admin", "admin_token", "admin", True)
    assert store.get_rater(db, "admin")["role"] == "rater"  # a plain row to rate under, no token
    assert access.resolve(db, "top-secret", admin_token="top-secret").rater["id"] == \
        found.rater["id"]


def test_rater_token_gives_the_rater_role(db):
    rater, token = store.create_rater(db, "ann")
    found = access.resolve(db, token, admin_token="top-secret")
    assert (found.role, found.mode, found.rater["id"], found.is_admin) == (
        "rater", "token", rater["id"], False)
    with pytest.raises(AccessDenied, match="for project admins"):
        access.require_admin(found)


def test_admin_role_in_the_raters_table_is_an_admin(db):
    _, token = store.create_rater(db, "boss", role="admin")
    assert access.require_admin(access.resolve(db, token, admin_token=None)).name == "boss"


@pytest.mark.parametrize("token", [None, "", "wrong", "top-secretX", "é" * 10, "x" * 500])
def test_wrong_token_reads_like_a_missing_one(db, token):
    store.create_rater(db, "ann")
    with pytest.raises(AccessDenied) as info:
        access.resolve(db, token, admin_token="top-secret")
    assert str(info.value) == DENIED


def test_deactivated_rater_is_refused_with_the_same_message(db):
    rater, token = store.create_rater(db, "ann")
    store.set_rater_active(db, rater["id"], False)
    with pytest.raises(AccessDenied) as info:
        access.resolve(db, token, admin_token=None)
    assert str(info.value) == DENIED


def test_local_mode_without_an_admin_token(db):
    found = access.resolve(db, None, admin_token=None)
    assert (found.role, found.mode, found.rater) == ("admin", "local", None)
    named = access.local_rater(db, found, "  Ada   Lovelace ")
    assert (named.name, named.mode, named.is_admin) == ("Ada Lovelace", "local", True)
    assert store.get_rater(db, "Ada Lovelace")["token_hash"] is None


def test_rater_link_in_local_mode_still_restricts_to_rater(db):
    _, token = store.create_rater(db, "ann")
    assert access.resolve(db, token, admin_token=None).role == "rater"
    with pytest.raises(AccessDenied) as info:
        access.resolve(db, "wrong", admin_token=None)
    assert str(info.value) == DENIED


def test_local_names_are_checked(db):
    local = access.resolve(db, None, admin_token=None)
    store.create_rater(db, "ann")
    with pytest.raises(InvalidInput, match="name must not be empty"):
        access.local_rater(db, local, "   ")
    with pytest.raises(InvalidInput, match="at most 100 characters, got 101"):
        access.local_rater(db, local, "x" * 101)
    with pytest.raises(InvalidInput, match="belongs to a rater with a personal link"):
        access.local_rater(db, local, "ann")
    admin = access.resolve(db, "t", admin_token="t")
    with pytest.raises(AccessDenied):
        access.local_rater(db, admin, "bob")


def test_an_llm_rater_called_admin_cannot_lock_the_admin_out(db):
    """Regression: importing an LLM judge named "admin" before the admin's first visit
    refused the admin token on every page."""
    with pytest.raises(InvalidInput, match="'Admin' is reserved for the admin"):
        store.get_or_create_rater(db, "Admin", "llm")
    found = access.resolve(db, "t", admin_token="t")
    assert (found.is_admin, found.name) == (True, "admin")
    with pytest.raises(Conflict, match="reserved for the admin"):
        store.create_rater(db, "ADMIN")


def test_human_and_llm_raters_never_share_a_name(db):
    store.create_rater(db, "bob")
    with pytest.raises(InvalidInput, match="'bob' is a human rater; an LLM judge needs another"):
        store.get_or_create_rater(db, "Bob", "llm")
    store.get_or_create_rater(db, "gpt-4", "llm")
    with pytest.raises(InvalidInput, match="'gpt-4' is an LLM judge; a human rater needs"):
        store.get_or_create_rater(db, "GPT-4")


@pytest.mark.parametrize(("given", "stored"), [
    ("  Ada\t\nLovelace ", "Ada Lovelace"),
    ("alice\u200b", "alice"),                      # zero-width space
    ("e\u0301ve", "\u00e9ve"),                     # NFC
    ("bob\u202eevil", "bobevil"),                  # right-to-left override
])
def test_names_are_normalized(db, given, stored):
    rater, _ = store.create_rater(db, given)
    assert rater["name"] == stored


@pytest.mark.parametrize(("name", "message"), [
    ("alic\u0435", "mixes Cyrillic and Latin letters"),   # Cyrillic е
    ("x" * 101, "at most 100 characters, got 101"),
    ("\u200b\u200b", "must not be empty"),
])
def test_bad_names_are_refused(db, name, message):
    with pytest.raises(InvalidInput, match=message):
        store.create_rater(db, name)


def test_names_clash_case_insensitively(db):
    store.create_rater(db, "Alice")
    with pytest.raises(Conflict, match="rater 'alice' already exists \\(as 'Alice'\\)"):
        store.create_rater(db, "alice")
    assert store.get_rater(db, "ALICE")["name"] == "Alice"
