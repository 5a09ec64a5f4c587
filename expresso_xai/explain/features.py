"""Region features for perturbation methods: a mask of feature ids built from the region
map, and the spreading of per-feature values back onto pixels and regions."""

from __future__ import annotations

import numpy as np

from ..errors import MethodError


def feature_mask(region_map, window: int | None) -> np.ndarray:
    """``(L, H, W)`` int64 feature ids 0..F-1: one feature per region present in the clip
    (``window=None``) or per region and time window of ``window`` frames."""
    return feature_units(region_map, window)[1]


def feature_units(region_map, window: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(codes (F,), ids (L, H, W))``: each feature's code ``window * R + region`` (just
    the region without a window) and each pixel's feature id 0..F-1, features in code
    order. What occlusion ablates and what evaluation removes are the same units."""
    if not region_map.exclusive:
        raise MethodError(
            f"region features must not overlap, but scheme {region_map.scheme!r} overlaps; "
            "use regions='partition' for occlusion and shapley"
        )
    labels = region_map.labels.astype(np.int64)
    n_regions = len(region_map.names)
    if window:
        windows = (np.arange(len(labels)) // int(window))[:, None, None]
        labels = windows * n_regions + labels
    codes, ids = np.unique(labels, return_inverse=True)
    return codes, ids.reshape(labels.shape)


def spread(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pixel map giving each feature's value in equal shares to its pixels, so that the
    map's sum over a feature equals the feature's value."""
    counts = np.bincount(mask.ravel(), minlength=len(values)).astype(np.float64)
    per_pixel = np.asarray(values, dtype=np.float64) / np.maximum(counts, 1)
    return per_pixel[mask]


def mask_tensor(model, mask: np.ndarray, device):
    """The feature mask as a tensor broadcastable to the model's input."""
    import torch

    tensor = torch.from_numpy(mask).to(device)
    if model.layout == "NCTHW":
        return tensor[None, None]
    return tensor[None, :, None]


def values_per_feature(attribution, mask: np.ndarray, model) -> np.ndarray:
    """Read each feature's value from a Captum output that repeats it on every element."""
    per_element = attribution.detach().select(model.channel_dim, 0)[0].double().cpu().numpy()
    n_features = int(mask.max()) + 1
    first = np.zeros(n_features, dtype=np.int64)
    flat = mask.ravel()
    first[flat[::-1]] = np.arange(len(flat))[::-1]
    return per_element.ravel()[first]
