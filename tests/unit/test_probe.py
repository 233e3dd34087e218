

def test_paced_keeps_the_schedule_and_stops():
    from redlab.probe_agent import paced
    clock = {"now": 0.0}
    waits = []

    def wait(seconds):
        waits.append(round(seconds, 3))
        clock["now"] += seconds
    import redlab.probe_agent as pa
    real = pa.time.monotonic
    pa.time.monotonic = lambda: clock["now"]
    try:
        seen = []
        for seq in paced(0.5, 4, 60, lambda: False, wait=wait):
            seen.append(seq)
            clock["now"] += 0.2 if seq != 1 else 0.9      # step 1 is slow
        assert seen == [0, 1, 2, 3]
        # 0.5 - 0.2; step 1 overran its slot: no wait, the schedule restarts; then 0.3 again
        assert waits == [0.3, 0.3, 0.3]
        assert list(paced(0.5, 10, 60, lambda: True, wait=wait)) == []
    finally:
        pa.time.monotonic = real
