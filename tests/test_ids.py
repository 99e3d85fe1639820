import time
import uuid

from config.ids import uuid7


def test_uuid7_is_a_version_7_rfc_uuid():
    value = uuid7()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_uuid7_is_time_ordered_and_unique():
    first = uuid7()
    time.sleep(0.002)
    later = [uuid7() for _ in range(1000)]
    assert all(first < value for value in later)
    assert len(set(later)) == 1000
    millis = first.int >> 80
    assert abs(millis - time.time_ns() // 1_000_000) < 5_000
