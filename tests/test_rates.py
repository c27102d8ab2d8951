"""Counters become rates: wraps are followed, resets and reboots are never turned into spikes."""

from eduedge.core.rates import RateTracker

K = ("sw1", "1.3.6.1.2.1.31.1.1.1.6", "1")


def test_first_reading_gives_no_rate():
    assert RateTracker().update(K, 5, bits=64, mono=0.0) is None


def test_rate_is_delta_over_monotonic_time():
    r = RateTracker()
    r.update(K, 1_000, bits=64, mono=10.0)
    assert r.update(K, 6_000, bits=64, mono=15.0) == 1_000.0


def test_32bit_counter_wrap_is_followed():
    r = RateTracker()
    r.update(K, 2**32 - 1_000, bits=32, mono=0.0)
    assert r.update(K, 1_000, bits=32, mono=2.0) == 1_000.0


def test_64bit_counter_wrap_is_followed():
    r = RateTracker()
    r.update(K, 2**64 - 10, bits=64, mono=0.0)
    assert r.update(K, 30, bits=64, mono=4.0) == 10.0


def test_64bit_counter_going_back_far_is_a_reset_not_a_spike():
    r = RateTracker()
    r.update(K, 10**15, bits=64, mono=0.0)
    assert r.update(K, 5, bits=64, mono=60.0) is None
    assert r.discarded == 1
    assert r.update(K, 605, bits=64, mono=120.0) == 10.0


def test_reboot_seen_by_uptime_discards_every_delta_of_that_device():
    r = RateTracker()
    other = ("sw2", "x", "1")
    assert r.observe_uptime("sw1", 1000.0) is False
    r.observe_uptime("sw2", 50.0)
    r.update(K, 4_000_000_000, bits=32, mono=0.0)
    r.update(other, 100, bits=32, mono=0.0)
    # sw1 reboots: its 32-bit counter restarts low, which would otherwise look like a plausible wrap
    assert r.observe_uptime("sw1", 3.0) is True
    assert r.update(K, 500, bits=32, mono=60.0) is None
    assert r.update(K, 1_100, bits=32, mono=120.0) == 10.0
    # the other device is unaffected
    assert r.update(other, 700, bits=32, mono=60.0) == 10.0


def test_a_missing_reading_spans_the_longer_interval():
    r = RateTracker()
    r.update(K, 0, bits=64, mono=0.0)
    # the reading at t=60 was lost; the next one covers 120 s
    assert r.update(K, 12_000, bits=64, mono=120.0) == 100.0


def test_same_time_twice_gives_no_rate_rather_than_dividing_by_zero():
    r = RateTracker()
    r.update(K, 0, bits=64, mono=5.0)
    assert r.update(K, 10, bits=64, mono=5.0) is None


def test_forget_drops_a_device():
    r = RateTracker()
    r.update(K, 0, bits=64, mono=0.0)
    r.forget("sw1")
    assert r.update(K, 10, bits=64, mono=1.0) is None
