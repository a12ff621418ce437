"""prefstore: collect human preference data on LLM outputs, and learn from it."""

from prefstore.errors import (
    AccessDenied,
    Conflict,
    InvalidInput,
    MissingDependency,
    NotConverged,
    NotFound,
    PrefstoreError,
)

__version__ = "0.1.0"

__all__ = [
    "AccessDenied",
    "Conflict",
    "InvalidInput",
    "MissingDependency",
    "NotConverged",
    "NotFound",
    "PrefstoreError",
    "__version__",
]
