"""How big the datasets are and how often each figure is measured (``--scale``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SCALES", "Scale"]


@dataclass(frozen=True)
class Scale:
    name: str
    ct_slices: int  # the CT series: 512×512, 16-bit (~0.5 MB per slice)
    small_instances: int  # the small set: 64×64, 16-bit (~9 KB per instance)
    query_studies: int  # the query set: studies …
    instances_per_study: int  # … times this many instances
    # The C-STORE rows without TCP_NODELAY run at Nagle's pace (~40 ms per message on
    # Orthanc), so they send only the first N instances of each set.
    nagle_instances: int
    # The C-STORE row with one association per instance sends the first N small ones.
    per_association: int
    queries_per_kind: int  # queries of each kind per run (one value each, cycled)
    repeat: int  # runs per figure (the median is reported, min–max beside it)


SCALES: dict[str, Scale] = {
    # ~10-15 minutes on a 2-core machine.
    "quick": Scale("quick", ct_slices=500, small_instances=1000, query_studies=1000,
                   instances_per_study=5, nagle_instances=200, per_association=200,
                   queries_per_kind=20, repeat=3),
    # What the issue asks for; about an hour (loading 100,000 instances in each server
    # dominates).
    "full": Scale("full", ct_slices=500, small_instances=5000, query_studies=10_000,
                  instances_per_study=10, nagle_instances=500, per_association=1000,
                  queries_per_kind=50,
                  repeat=5),
}
