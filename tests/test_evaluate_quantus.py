"""Our deletion curve against Quantus's own implementation of the same experiment,
``quantus.RegionPerturbation`` (Samek et al. 2017), on a case both support, to float noise.

Quantus 0.6 is installed by ``make`` without its ``opencv-python`` requirement (the GUI
build would replace our headless ``cv2``; see the Makefile); the test is skipped where it
is missing.

The case: a static clip (one frame of participant_high repeated 16 times) that Quantus
sees as the single frame ``(1, 3, 64, 64)`` in the model's input space, through an image
model that repeats the frame over the clip and runs the video model. The regions are an
8 × 8-pixel grid (a test scheme, :class:`PatchGrid`) and a unit's window is the whole
clip, so each of our 64 units (region × window) is one of Quantus's 8 × 8 patches, in
every frame. A removed unit gets the clip's blur (``ctx.baseline("blur")``, our default
fill); Quantus's perturbation copies the same values into each patch it removes. Quantus
ranks the patches by the sum of the per-pixel attribution it is given (the cube's kept
``pixels`` summed over the clip's frames); we rank the units by the cube's pooled
``attribution`` summed over the window: the same numbers, pooled by each library.

Quantities compared, for two explainers and both orders (``morf``, ``lerf``):

* Quantus returns, for ``k = 1..64``, ``f(x) - f(x_k)``: the target output of the clean
  input minus that with the ``k`` first patches of the order replaced (no ``k = 0``);
* our ``curve(explainer, "deletion", order, step=k/64)`` is ``f(x_k)`` for ``k = 0..64``,
  so ``quantus[k - 1] == curve[step 0] - curve[step k/64]``;
* our ``aopc(explainer, "deletion", order)`` is the mean of ``f(x) - f(x_k)`` over
  ``k = 0..64`` (Samek's AOPC, which counts the unperturbed step), so it equals
  ``sum(quantus) / 65``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import expresso_xai as ex
from expresso_xai.explain import prepare_clip
from expresso_xai.regions import SCHEMES, RegionScheme
from expresso_xai.testing import tiny_model

quantus = pytest.importorskip("quantus", reason="Quantus is not installed: `make` installs quantus==0.6.0 "
                                                "with --no-deps (see the Makefile)")

SIZE = (64, 64)
PATCH = 8
N_PATCHES = (SIZE[0] // PATCH) * (SIZE[1] // PATCH)
EXPLAINERS = ("input_x_gradient", "occlusion")


class PatchGrid(RegionScheme):
    """Regions that are Quantus's patches: an 8 × 8-pixel grid, row by row, the same in
    every frame (landmarks are ignored)."""

    name = "quantus_patches"
    names = tuple(f"patch_{i}" for i in range(N_PATCHES)) + ("background",)
    exclusive = True

    def rasterize(self, landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
        return ((ys // PATCH) * (shape[1] // PATCH) + xs // PATCH).astype(np.uint8)


class FrameAsClip(torch.nn.Module):
    """The image model Quantus sees: ``(N, C, H, W)`` frames, each repeated over a clip
    and run through the video model."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.net = model.module  # registered, so that Quantus's eval-mode check sees it

    def forward(self, frame):
        clip = frame.unsqueeze(self.model.time_dim)
        shape = list(clip.shape)
        shape[self.model.time_dim] = self.model.clip_length
        return self.model(clip.expand(*shape))


def copy_fill(arr, indices, fill, **_):
    """Quantus's perturbation function: the removed patch's values become the fill's
    (``arr`` and ``fill`` flattened per sample, ``indices`` ``(batch, patch)``)."""
    out = arr.copy()
    rows = np.arange(len(arr))[:, None]
    out[rows, indices] = fill.reshape(len(arr), -1)[rows, indices]
    return out


@pytest.fixture(scope="module")
def static_case(high_video):
    """The static clip, its face track, a nonlinear tiny model and its cube on the grid,
    with pixels kept."""
    frames = np.repeat(high_video.frames[60:61], 16, axis=0)
    video = ex.Video.from_array(frames, high_video.fps)
    faces = ex.track_faces(video, progress=False)
    model = tiny_model(input_size=SIZE, widths=(4, 8), strides=(1, 2))
    cube = ex.explain(model, video, faces, methods=list(EXPLAINERS), regions=PatchGrid(), keep_pixels=True,
                      progress=False)
    return video, faces, model, cube


def _quantus_curve(model, frame, fill, attribution, order):
    metric = quantus.RegionPerturbation(patch_size=PATCH, order=order, regions_evaluation=N_PATCHES,
                                        normalise=False, abs=False, perturb_func=copy_fill,
                                        perturb_func_kwargs={"fill": fill}, disable_warnings=True)
    scores = metric(model=FrameAsClip(model).eval(), x_batch=frame, y_batch=np.array([0]),
                    a_batch=attribution[None, None], channel_first=True, softmax=False, device="cpu")
    return np.asarray(scores, dtype=np.float64)[0]


def test_deletion_curve_and_aopc_match_quantus_region_perturbation(static_case, monkeypatch):
    video, faces, model, cube = static_case
    monkeypatch.setitem(SCHEMES, PatchGrid.name, PatchGrid)  # evaluate finds the cube's scheme by name
    ev = ex.evaluate(model, video, cube, faces=faces, metrics=["deletion"], window=16, steps=N_PATCHES,
                     n_random=2, progress=False)

    ctx = prepare_clip(model, video.frames, faces, ex.FaceCrop.from_track(faces, size=SIZE), PatchGrid())
    assert torch.equal(ctx.x, ctx.x[:, :, :1].expand_as(ctx.x)), "the clip must be static for one frame to stand for it"
    frame = ctx.x[:, :, 0].numpy()
    fill = ctx.baseline("blur")[:, :, 0].numpy()
    with torch.no_grad():
        clean = float(FrameAsClip(model).eval()(torch.from_numpy(frame))[0, 0])
    tolerance = 1e-5 * abs(clean)  # float32 outputs of batched and single forwards

    for explainer in EXPLAINERS:
        pixels = cube.pixels.sel(explainer=explainer).values.astype(np.float64).sum(axis=0)  # (H, W)
        patch_sums = pixels.reshape(8, PATCH, 8, PATCH).sum(axis=(1, 3)).ravel()
        pooled = cube.attribution.sel(explainer=explainer).values.astype(np.float64).sum(axis=0)[:N_PATCHES]
        disagreement = np.abs(patch_sums - pooled).max()
        assert disagreement < 1e-6 * np.abs(pooled).max()
        # both libraries must see one order: no two patches closer than the two poolings differ
        assert np.diff(np.sort(pooled)).min() > 10 * disagreement
        drops = {}
        for order in ("morf", "lerf"):
            ours = ev.curve.sel(explainer=explainer, kind="deletion", order=order).values
            theirs = _quantus_curve(model, frame, fill, pixels, order)
            assert ours[0] == pytest.approx(clean, abs=tolerance)
            np.testing.assert_allclose(theirs, ours[0] - ours[1:], rtol=0, atol=tolerance)
            aopc = float(ev.aopc.sel(explainer=explainer, kind="deletion", order=order))
            assert aopc == pytest.approx(theirs.sum() / (N_PATCHES + 1), abs=tolerance)
            drops[order] = theirs
        # the comparison can tell orders apart: the two curves differ by far more than the tolerance
        assert np.abs(drops["morf"] - drops["lerf"]).max() > 100 * tolerance
