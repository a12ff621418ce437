"""One error family for prefstore.

Messages name the input and what was wrong, e.g.
``line 17: "responses" must have at least 2 entries, got 1``. The CLI and the
pages translate these at the edge.
"""


class PrefstoreError(Exception):
    """Base class for every error prefstore raises on purpose."""


class InvalidInput(PrefstoreError):
    """An argument, a file or a setting is malformed or out of range."""


class NotFound(PrefstoreError):
    """A project, item, rater or fit that was asked for does not exist."""


class Conflict(PrefstoreError):
    """The request clashes with stored state (a duplicate name, say)."""


class NotConverged(PrefstoreError):
    """A numerical fit did not converge, or its problem is not identifiable."""


class MissingDependency(PrefstoreError):
    """An optional extra (``pip install prefstore[llm]``) is not installed."""


class AccessDenied(PrefstoreError):
    """A token is missing, wrong or deactivated, or lacks the role needed."""
