"""How long a replica-exchange run must go on for every group to complete a round trip.

The verdict (`diagnostics.pt_verdict`) refuses a run in which some independent group had no
walker cross its ladder and back: the group bootstrap treats each group as a replicate of an
equilibrium run, and a group that never linked the ends of its ladder is none. When the run has
made some trips, their rate says how much longer it must go: if each group makes trips at a
rate r per sweep (Poisson), the `missing` groups still without one are expected to number
missing * exp(-r * s) after s more sweeps, and the run is extended until that expectation is
`EXPECTED_GROUPS_WITHOUT`, within the caller's `max_steps`.

Which rate: a run's first trips come late (every walker must first reach one end of the ladder,
then cross it twice), so the rate over a whole first run understates the rate that follows; on
the 144-bit space of `benchmarks.accuracy_spaces` a default run made 2 trips in 9,000 recorded
sweeps and 150 in the next 30,000 (BUILD_NOTES.md). So the first decision predicts from the whole
run and, when that prediction lies beyond `max_steps`, still doubles the run once (a probe, within
`max_steps`); every later decision predicts from the last extension's own trips alone, and stops
the run when that extension made none or its prediction lies beyond `max_steps`. A run with no
trip at all gives no rate and is not extended (its warning gives the ladder's bound instead).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

EXPECTED_GROUPS_WITHOUT = 0.5


class Extension(NamedTuple):
    steps: int    # MH sweeps to add (0: do not extend)
    needed: int   # predicted total sweeps for every group to have a trip (0: no prediction)
    reason: str   # one plain sentence on the decision


def extension(trips_per_group, steps: int, max_steps: int, block: int,
              since: tuple[np.ndarray, int] | None = None, counted_from: int = 0) -> Extension:
    """The sweeps to add, in whole blocks of `block`, to a run of `steps` sweeps whose groups made
    `trips_per_group` round trips since sweep `counted_from`, so that it stays within `max_steps`
    in all. `since`: the trips per group and the sweeps when the last extension began (None before
    the first)."""
    trips = np.asarray(trips_per_group, np.int64)
    groups, missing = trips.size, int((trips < 1).sum())
    if missing == 0:
        return Extension(0, steps, "every group completed a round trip")
    total = int(trips.sum())
    if total == 0:
        return Extension(0, 0, "no walker completed a round trip, so there is no rate to extend the run by")
    if since is None:
        counted, over, where = total, steps - counted_from, "the run's"
    else:
        counted, over, where = total - int(np.sum(since[0])), steps - int(since[1]), "the last extension's"
        if counted == 0:
            return Extension(0, 0, f"{missing} of {groups} groups have no round trip, and the last extension "
                                   f"({over:,} sweeps) made no trip at all")
    rate = counted / groups / over  # trips per group per sweep
    more = math.ceil(math.log(missing / EXPECTED_GROUPS_WITHOUT) / rate)
    needed = steps + more
    room = (max_steps - steps) // block * block
    pace = f"{missing} of {groups} groups have no round trip; at {where} rate ({counted} trips in {over:,} sweeps)"
    if more <= room:
        add = min(room, -(-max(more, 1) // block) * block)
        return Extension(add, needed, f"{pace} every group should have one after about {needed:,} sweeps: "
                                      f"extending by {add:,}")
    if since is None and room >= block:
        add = min(room, -(-steps // block) * block)
        return Extension(add, needed, f"{pace} every group would need about {needed:,} sweeps, beyond "
                                      f"max_steps={max_steps:,}, but a run's first trips come late: "
                                      f"extending by {add:,} to measure the rate that follows")
    return Extension(0, needed, f"{pace} every group needs about {needed:,} sweeps, beyond max_steps={max_steps:,}")
