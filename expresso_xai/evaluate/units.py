"""Region × time units of a clip, their relevance in the cube's attribution, how a removed
unit is filled, and the model's output with sets of units removed (batched).

A **unit** is one facial region during one window of ``window`` consecutive frames of a
clip, the unit occlusion uses: what our users think in, and few enough (12 regions × 4
windows of a 16-frame clip) that a perturbation curve can visit every one.

Fills, each a tensor in the model's input space the size of the clip, so that removing
any set of units is one ``torch.where`` (batched like occlusion):

* ``"blur"``: the clip's own Gaussian blur (sigma 1/20 of the side), as occlusion's default
  baseline: fine detail goes, the region's colour and shape stay.
* ``"temporal"``: the same pixels from the nearest frame outside the unit's window (the
  frame just before it, or just after when nearer or at the clip's start): an event
  confined to the window — a blink — is removed by the open eyes around it, while the
  face's appearance stays. It removes what changes over time, not what is constant.
* ``"noisy_linear"``: ROAD's noisy linear imputation (Rong et al. 2022), per frame and
  per region: each region's pixels are set to the solution of a discrete Laplace
  equation (every pixel the weighted mean of its 8 neighbours, 1/6 for the four direct
  ones and 1/12 for the diagonal ones) with the rest of the frame fixed, plus Gaussian
  noise of 1% of the pixel range. ROAD imputes all removed pixels at once; imputing each
  region with the rest of the frame intact makes the fill of a unit independent of which
  other units are removed, so one fill tensor serves every step (a removed neighbour
  contributes its original border pixels to the imputation, one pixel deep). A flat fill
  would leak the region's shape to the model; the imputation follows its surroundings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import EvaluationError


@dataclass(eq=False)
class Units:
    """The region × time units of one clip.

    Attributes:
        ids: ``(L, H, W)`` int64, each pixel's unit (0..n-1).
        window: ``(n,)`` the window of each unit (frames ``window*w`` to ``window*(w+1)-1``).
        region: ``(n,)`` the region index of each unit (the cube's ``region`` order).
        size: the frames per window.
    """

    ids: np.ndarray
    window: np.ndarray
    region: np.ndarray
    size: int

    def __len__(self) -> int:
        return len(self.window)

    def relevance(self, attribution: np.ndarray, n_valid: int | None = None) -> np.ndarray:
        """``(n,)`` each unit's attribution: the ``(L, R)`` region × time attribution
        summed over the unit's frames (the first ``n_valid`` frames only)."""
        attribution = np.asarray(attribution, dtype=np.float64)
        n_valid = len(attribution) if n_valid is None else int(n_valid)
        windows = np.arange(n_valid) // self.size
        per_window = np.zeros((int(self.window.max()) + 1, attribution.shape[1]))
        np.add.at(per_window, windows, attribution[:n_valid])
        return per_window[self.window, self.region]


def clip_units(region_map, window: int) -> Units:
    """The units of a clip: every region present in each window of ``window`` frames.

    Example:
        >>> import numpy as np
        >>> from expresso_xai.regions import RegionMap
        >>> labels = np.zeros((8, 4, 4), np.uint8); labels[:, :2] = 1
        >>> rmap = RegionMap(labels, ("a", "b"), True, np.ones(8, bool), np.arange(8), "partition")
        >>> units = clip_units(rmap, window=4)
        >>> len(units), units.window.tolist(), units.region.tolist()
        (4, [0, 0, 1, 1], [0, 1, 0, 1])
    """
    from ..explain.features import feature_units

    if not region_map.exclusive:
        raise EvaluationError(f"units need non-overlapping regions; scheme {region_map.scheme!r} overlaps")
    codes, ids = feature_units(region_map, int(window))
    n_regions = len(region_map.names)
    return Units(ids, codes // n_regions, codes % n_regions, int(window))


def _nearest_outside(n_frames: int, window: int) -> np.ndarray:
    """For each frame, the nearest frame outside its window (ties to the earlier one)."""
    if window >= n_frames:
        raise EvaluationError(f"fill='temporal' takes frames from outside each window, but the window ({window} "
                              f"frames) covers the whole {n_frames}-frame clip; use a smaller window")
    source = np.empty(n_frames, np.int64)
    for t in range(n_frames):
        start = (t // window) * window
        end = min(start + window, n_frames)
        before, after = start - 1, end
        if before < 0:
            source[t] = after
        elif after >= n_frames:
            source[t] = before
        else:
            source[t] = before if t - before <= after - t else after
    return source


def _laplace_fill(frame: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """``frame`` (H, W, 3) float64 with the ``unknown`` pixels replaced by the solution of
    the weighted 8-neighbour Laplace equation, the other pixels fixed. A small pull
    (1e-4) towards the frame's mean keeps the system solvable when no known pixel
    touches the unknown ones (a frame that is all one region)."""
    import scipy.sparse
    import scipy.sparse.linalg

    height, width = unknown.shape
    index = -np.ones(unknown.shape, np.int64)
    ys, xs = np.nonzero(unknown)
    index[ys, xs] = np.arange(len(ys))
    rows, cols, weights = [np.arange(len(ys))], [np.arange(len(ys))], [np.full(len(ys), 1e-4)]
    rhs = np.repeat(1e-4 * frame.reshape(-1, 3).mean(axis=0)[None], len(ys), axis=0)
    for dy, dx, weight in ((0, 1, 1 / 6), (0, -1, 1 / 6), (1, 0, 1 / 6), (-1, 0, 1 / 6),
                           (1, 1, 1 / 12), (1, -1, 1 / 12), (-1, 1, 1 / 12), (-1, -1, 1 / 12)):
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        at, ny, nx = np.nonzero(inside)[0], ny[inside], nx[inside]
        rows.append(at)
        cols.append(at)
        weights.append(np.full(len(at), weight))
        neighbour = index[ny, nx]
        known = neighbour < 0
        np.add.at(rhs, at[known], weight * frame[ny[known], nx[known]])
        rows.append(at[~known])
        cols.append(neighbour[~known])
        weights.append(np.full(int((~known).sum()), -weight))
    matrix = scipy.sparse.csc_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                                     shape=(len(ys), len(ys)))
    filled = frame.copy()
    filled[ys, xs] = scipy.sparse.linalg.splu(matrix).solve(rhs)
    return filled


def noisy_linear_frames(frames: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                        noise: float = 0.01) -> np.ndarray:
    """ROAD's noisy linear imputation of every region of every frame, each region with the
    rest of its frame fixed (see the module's notes): ``(L, H, W, 3)`` uint8.

    Example:
        >>> import numpy as np
        >>> frames = np.zeros((1, 6, 6, 3), np.uint8); frames[..., :3, :] = 200
        >>> labels = np.zeros((1, 6, 6), np.int64); labels[0, 2:4, 2:4] = 1
        >>> out = noisy_linear_frames(frames, labels, np.random.default_rng(0), noise=0.0)
        >>> int(out[0, 2, 2, 0]), int(out[0, 3, 3, 0])  # between the bright and dark sides
        (138, 62)
    """
    out = np.empty(frames.shape, np.float64)
    for t, (frame, frame_labels) in enumerate(zip(np.asarray(frames, np.float64), labels)):
        for region in np.unique(frame_labels):
            unknown = frame_labels == region
            out[t][unknown] = _laplace_fill(frame, unknown)[unknown]
    out += rng.normal(0.0, noise * 255.0, size=out.shape)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def fill_tensor(ctx, fill: str, window: int, rng: np.random.Generator):
    """The clip filled everywhere, in the model's input space: what a removed unit's
    pixels become (see the module's notes on each ``fill``)."""
    if fill == "blur":
        return ctx.baseline("blur")
    if fill == "temporal":
        return ctx.model.preprocess(ctx.frames[_nearest_outside(len(ctx.frames), window)], ctx.device)
    if fill == "noisy_linear":
        labels = ctx.region_map.labels.astype(np.int64)
        return ctx.model.preprocess(noisy_linear_frames(ctx.frames, labels, rng), ctx.device)
    raise EvaluationError(f"unknown fill {fill!r}")


def outputs_removed(ctx, units: Units, filled, removed: np.ndarray, batch_size: int) -> np.ndarray:
    """The target output for each row of ``removed`` ``(S, n)`` bool (the units replaced by
    ``filled``), ``batch_size`` inputs per forward: ``(S,)`` float64."""
    import torch

    from ..explain.features import mask_tensor

    ids = mask_tensor(ctx.model, units.ids, ctx.x.device)[0]  # (1, L, H, W) or (L, 1, H, W)
    removed = torch.from_numpy(np.asarray(removed, dtype=bool)).to(ctx.x.device)
    values = np.empty(len(removed), np.float64)
    with torch.no_grad():
        for start in range(0, len(removed), batch_size):
            chunk = removed[start : start + batch_size]
            batch = torch.where(chunk[:, ids], filled, ctx.x)
            values[start : start + len(chunk)] = ctx.output(batch).double().cpu().numpy()
    return values
