"""Feature cache: round trip, corruption detection, eviction, and keys that separate what differs."""
import numpy as np
import pytest

from grounding.stages.cache import FeatureCache, make_key, parse_size


def test_round_trip_and_stats(tmp_path):
    c = FeatureCache(tmp_path)
    k = make_key("cos", "model", ("file", "/x.jpg", 1, 2), "a dog")
    assert c.get(k) is None
    a = np.random.default_rng(0).random((5, 7)).astype(np.float32)
    c.put(k, cos=a, counts=np.arange(3))
    got = c.get(k)
    np.testing.assert_array_equal(got["cos"], a)
    np.testing.assert_array_equal(got["counts"], np.arange(3))
    assert c.stats() == {"hits": 1, "misses": 1, "corrupt": 0}


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_entry_is_detected_and_removed(tmp_path, damage):
    c = FeatureCache(tmp_path)
    k = make_key("x")
    c.put(k, cos=np.linspace(0, 1, 1000, dtype=np.float32))
    p = next(tmp_path.glob("*/*.npz"))
    data = bytearray(p.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":  # change one stored value without touching the zip structure
        i = data.find(np.float32(0.5005005).tobytes())
        assert i > 0
        data[i:i + 4] = np.float32(0.25).tobytes()
    else:
        data = b"not a zip at all"
    p.write_bytes(bytes(data))
    assert c.get(k) is None
    assert c.corrupt == 1 and not p.exists()


def test_keys_differ_for_different_inputs():
    base = ("cos", ("file", "/m.pt", 10, 20), "torch.float32", ("file", "/i.jpg", 5, 6), 224, {"upsample": 2}, "a cat")
    k0 = make_key(*base)
    assert k0 == make_key(*base)
    for i, other in [(1, ("file", "/m.pt", 10, 21)), (2, "torch.float16"), (3, ("file", "/i.jpg", 5, 7)),
                     (5, {"upsample": 1}), (6, "a dog")]:
        changed = list(base)
        changed[i] = other
        assert make_key(*changed) != k0


def test_eviction_respects_size_bound(tmp_path):
    c = FeatureCache(tmp_path, max_bytes="40KB")
    for i in range(20):
        c.put(make_key(i), cos=np.zeros(2500, np.float32))  # ~10 KB each
    c.evict()
    total = sum(f.stat().st_size for f in tmp_path.glob("*/*.npz"))
    assert total <= 40 * 1024
    assert c.get(make_key(19)) is not None  # the newest survives


def test_parse_size():
    assert parse_size("20GB") == 20 << 30 and parse_size("1.5k") == 1536 and parse_size(None) is None
    with pytest.raises(ValueError):
        parse_size("lots")
