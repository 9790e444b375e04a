"""What the long-running programs do once they serve."""

from __future__ import annotations

import gc


def test_start_up_objects_are_out_of_the_collectors_walk() -> None:
    """The gateway and the connector freeze what start-up made: a full collection
    (45 ms over the gateway's ~45,000 start-up objects on the 2-vCPU VM, in the
    middle of a request) then walks only what came after."""
    import ibhost.gateway.app  # noqa: F401  (what the gateway has in memory at start)
    from ibhost.proc import freeze_startup_objects

    gc.collect()
    before = len(gc.get_objects())
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() >= before * 0.9
        assert len(gc.get_objects()) < before * 0.05, "start-up objects are still walked"
    finally:
        gc.unfreeze()  # this test process goes on collecting as before
