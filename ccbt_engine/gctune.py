"""Garbage-collector settings for a long-running engine process.

Why: a session keeps tens of thousands of long-lived objects (modules, settings, metainfo, piece
tables, peer state), and each full collection walks all of them again although almost none ever
become garbage. Meanwhile the download path makes a few short-lived container objects per 16 KiB
block (views, request tuples), so the young generation fills every few hundred blocks and each
young collection promotes whatever happens to be in flight. Both cost the event-loop thread, the
one serial stage of a fast download (see docs/performance.md, "Download").

:func:`tune_for_engine` therefore, once per process when the first session starts:

* collects, then ``gc.freeze()``\\ s what exists: start-up objects move to the permanent
  generation, so later full collections do not walk them again (collecting first means no
  cyclic garbage of the start-up is kept forever);
* raises the young-generation threshold to :data:`GEN0_THRESHOLD` unless the host application
  already set a higher one: fewer young collections, and fewer in-flight blocks promoted.

It is process-wide state, so it never lowers a threshold the host chose, and does nothing when
the host disabled automatic collection.
"""

from __future__ import annotations

import gc

__all__ = ["GEN0_THRESHOLD", "tune_for_engine"]

#: young-generation allocations between collections (CPython's default is 700)
GEN0_THRESHOLD = 10_000

_tuned = False


def tune_for_engine() -> bool:
    """Freeze start-up objects and raise the young threshold; True the first time it acts."""
    global _tuned
    if _tuned or not gc.isenabled():
        return False
    _tuned = True
    gc.collect()
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    if gen0 < GEN0_THRESHOLD:
        gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
    return True
