"""Images for the selective-search golden test (scripts/reference_selective_search_golden.py)."""
import numpy as np

CASES = [
    dict(name="coffee_small", image="coffee", step=6, scale=500, sigma=0.9, min_size=50),   # < 100 segments
    dict(name="astronaut_small", image="astronaut", step=4, scale=100, sigma=0.9, min_size=20),
    dict(name="chelsea_small", image="chelsea", step=3, scale=500, sigma=0.9, min_size=50),
]


def case_image(case) -> np.ndarray:
    import skimage.data

    return np.ascontiguousarray(getattr(skimage.data, case["image"])()[::case["step"], ::case["step"]])
