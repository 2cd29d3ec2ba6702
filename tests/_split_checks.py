"""Checks shared by the generator tests."""

import numpy as np

import generators


def assert_rows_regenerate(ds, indices, split=None, variant=None) -> None:
    """Each sample rendered alone equals its row of the stored split: video, masks, every object field."""
    for i in indices:
        one = generators.render_samples(ds.dataset, [i], split or ds.split, variant or ds.variant)
        np.testing.assert_array_equal(one["video"][0], ds.video[i])
        np.testing.assert_array_equal(one["masks"][0], ds.masks[i])
        for k, a in ds.objects.items():
            np.testing.assert_array_equal(one[f"objects/{k}"][0], a[i], err_msg=f"objects/{k} of sample {i}")
