"""The fuzz properties' budget and registry: `@fuzz(x=strategy)` makes a hypothesis test with
the CI budget (FUZZ_EXAMPLES examples, scaled by the property's cost; not derandomized,
failures kept in a database in the temp dir and printed as a blob to reproduce), and
records the property so that bench/fuzz.py can run it again for longer."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis.database import DirectoryBasedExampleDatabase

# examples per property in CI; VIETER_FUZZ_EXAMPLES raises or lowers it for a run
FUZZ_EXAMPLES = int(os.environ.get("VIETER_FUZZ_EXAMPLES", "200"))
DATABASE_DIR = Path(tempfile.gettempdir()) / "vieter-lite-hypothesis"


def database() -> DirectoryBasedExampleDatabase:
    return DirectoryBasedExampleDatabase(str(DATABASE_DIR))


def budget(examples: int, **extra: Any) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=False, print_blob=True,
                    database=database(),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much,
                                           HealthCheck.large_base_example], **extra)


@dataclass(frozen=True)
class Property:
    name: str          # module:function
    function: Callable[..., None]
    strategies: dict[str, Any]
    cost: int          # how many times dearer one example is than a cheap property's


PROPERTIES: list[Property] = []


def fuzz(cost: int = 1, **strategies: Any) -> Callable[[Callable[..., None]], Any]:
    """Decorator: the function as a hypothesis test of the CI budget divided by `cost`."""
    def wrap(function: Callable[..., None]) -> Any:
        PROPERTIES.append(Property(f"{function.__module__}:{function.__name__}", function,
                                   strategies, cost))
        return budget(max(10, FUZZ_EXAMPLES // cost))(given(**strategies)(function))
    return wrap
