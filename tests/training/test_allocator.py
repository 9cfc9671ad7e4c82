import platform

import pytest

from siamese.training.allocator import keep_large_allocations_in_heap


def test_can_be_switched_off(monkeypatch) -> None:
    monkeypatch.setenv("SIAMESE_MALLOC_TUNING", "0")
    assert keep_large_allocations_in_heap() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_applies_on_glibc(monkeypatch) -> None:
    monkeypatch.delenv("SIAMESE_MALLOC_TUNING", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_MAX_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert keep_large_allocations_in_heap() is True
