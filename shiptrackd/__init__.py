"""shiptrackd: keeps parcel tracking current."""

import sys

__version__ = "0.1.0"

# httpx imports its optional command-line client (click, rich, pygments) whenever those are
# installed, and textual and apprise install them: about 0.2 s of every daemon start and of every
# shiptrackctl call, for a program we never run. A None entry makes that one import fail at once,
# and httpx falls back to its stub `main` (httpx/__init__.py); nothing else is affected.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
