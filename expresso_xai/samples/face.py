"""Drawing the synthetic face: the portrait and its landmarks, a participant's identity,
where the face sits in the frame, and one frame drawn by piecewise-affine warps of the
portrait to an expression and a head pose, with lids, mouth, lighting and sensor noise."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

_FACE_CROP = (slice(20, 250), slice(110, 340))  # rows, cols of the astronaut image


@functools.lru_cache(maxsize=1)
def base_face() -> tuple[np.ndarray, np.ndarray]:
    """The portrait crop ``(230, 230, 3)`` uint8 RGB and its ``(68, 2)`` landmarks.

    Landmarks are found once with dlib's 68-point model (deterministic).

    Example:
        >>> from expresso_xai.samples import base_face
        >>> image, landmarks = base_face()
        >>> image.shape, landmarks.shape
        ((230, 230, 3), (68, 2))
    """
    import cv2
    from skimage import data

    from ..faces.landmarkers import DlibLandmarker

    image = np.ascontiguousarray(data.astronaut()[_FACE_CROP])
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    marker = DlibLandmarker()
    detections = marker.detect(gray)
    if not detections:  # pragma: no cover - the portrait is a clear frontal face
        raise RuntimeError("dlib found no face in the sample portrait")
    landmarks = marker.fit(gray, detections[0].box).astype(np.float64)
    return image, landmarks


def _deform(base: np.ndarray, iod: float, up: np.ndarray, across: np.ndarray, k: dict) -> np.ndarray:
    """Landmarks with the expression of one frame (``k``: track values at that frame)."""
    L = base.copy()
    closure = k["eye_closure"]
    for upper, lower in (((37, 41), (38, 40)), ((43, 47), (44, 46))):
        for u, l in (upper, lower):
            gap = base[l] - base[u]
            L[u] = base[u] + 0.78 * closure * gap
            L[l] = base[l] - 0.20 * closure * gap
    raise_ = k["brow_raise"]
    L[17:27] += -up * 0.13 * iod * raise_
    L[[37, 38, 43, 44]] += -up * 0.02 * iod * raise_ * (1 - closure)
    furrow = k["brow_furrow"]
    for i, w in zip(range(17, 27), (0.2, 0.5, 0.8, 1.0, 1.0, 1.0, 1.0, 0.8, 0.5, 0.2)):
        L[i] += up * 0.06 * iod * furrow * w
    L[[19, 20, 21]] += across * 0.04 * iod * furrow
    L[[22, 23, 24]] -= across * 0.04 * iod * furrow
    smile = k["smile"]
    L[48] += (-across * 0.07 - up * -0.06) * iod * smile
    L[54] += (across * 0.07 - up * -0.06) * iod * smile
    L[[49, 59, 60]] += (-across * 0.035 + up * 0.03) * iod * smile
    L[[53, 55, 64]] += (across * 0.035 + up * 0.03) * iod * smile
    opening = k["mouth_open"]
    down = -up
    for i, w in zip(range(55, 60), (0.8, 1.0, 1.0, 1.0, 0.8)):
        L[i] += down * 0.30 * iod * opening * w
    L[[65, 66, 67]] += down * 0.28 * iod * opening
    for i, w in zip(range(4, 13), (0.2, 0.5, 0.75, 0.9, 1.0, 0.9, 0.75, 0.5, 0.2)):
        L[i] += down * 0.22 * iod * opening * w
    return L


def _affine_matrices(src_tri: np.ndarray, dst_tri: np.ndarray) -> np.ndarray:
    """``(K, 2, 3)`` affine maps taking each dst triangle onto its src triangle."""
    ones = np.ones((len(dst_tri), 3, 1))
    dst_h = np.concatenate([dst_tri, ones], axis=2)  # (K, 3, 3)
    # Solve dst_h @ M^T = src for each triangle; near-degenerate ones fall back to lstsq.
    matrices = np.empty((len(dst_tri), 2, 3))
    det = np.linalg.det(dst_h)
    good = np.abs(det) > 1e-6
    if good.any():
        matrices[good] = np.linalg.solve(dst_h[good], src_tri[good]).transpose(0, 2, 1)
    for i in np.nonzero(~good)[0]:
        matrices[i] = np.linalg.lstsq(dst_h[i], src_tri[i], rcond=None)[0].T
    return matrices


def _warp(image, src_points, dst_points, triangles, out_shape):
    """Piecewise-affine warp: output pixels in each dst triangle sample the src triangle."""
    import cv2

    ids = np.zeros(out_shape, np.int32)
    scale = 16
    areas = []
    for k, tri in enumerate(triangles):
        polygon = np.round(dst_points[tri] * scale).astype(np.int32).reshape(-1, 1, 2)
        areas.append(abs(cv2.contourArea(dst_points[tri].astype(np.float32))))
        if areas[-1] > 1e-3:
            cv2.fillConvexPoly(ids, polygon, k + 1, lineType=cv2.LINE_8, shift=4)
    matrices = _affine_matrices(src_points[triangles], dst_points[triangles])
    matrices = np.concatenate([np.zeros((1, 2, 3)), matrices])
    matrices[0] = [[1, 0, 0], [0, 1, 0]]
    ys, xs = np.mgrid[0 : out_shape[0], 0 : out_shape[1]].astype(np.float64)
    m = matrices[ids]
    map_x = (m[..., 0, 0] * xs + m[..., 0, 1] * ys + m[..., 0, 2]).astype(np.float32)
    map_y = (m[..., 1, 0] * xs + m[..., 1, 1] * ys + m[..., 1, 2]).astype(np.float32)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


@dataclass
class FaceIdentity:
    """A participant's face: the portrait's landmarks with small changes of shape
    (``identity``), a skin ``tone`` per channel, and the face's own axes (``up``, ``across``
    and the inter-ocular distance ``iod``, from the portrait) that expressions move along."""

    identity: np.ndarray
    tone: np.ndarray
    iod: float
    up: np.ndarray
    across: np.ndarray

    @classmethod
    def draw(cls, base: np.ndarray, rng: np.random.Generator) -> "FaceIdentity":
        """A new participant from the portrait's landmarks ``base (68, 2)``.

        Example:
            >>> import numpy as np
            >>> from expresso_xai.samples import base_face
            >>> from expresso_xai.samples.face import FaceIdentity
            >>> FaceIdentity.draw(base_face()[1], np.random.default_rng(0)).identity.shape
            (68, 2)
        """
        iod = float(np.linalg.norm(base[45] - base[36]))
        up = (base[27] - base[8]) / np.linalg.norm(base[27] - base[8])
        across = (base[45] - base[36]) / iod
        identity = base.copy()
        identity[36:48] += np.where(np.arange(36, 48)[:, None] < 42, -1, 1) * across * rng.normal(0, 0.02) * iod
        identity[0:17] += (np.arange(17)[:, None] - 8) / 8 * across * rng.normal(0, 0.03) * iod
        identity[48:68] += (identity[48:68] - identity[48:68].mean(0)) * rng.normal(0, 0.05)
        tone = 1.0 + rng.normal(0, 0.06, size=3)
        return cls(identity, tone, iod, up, across)

    def expression(self, k: dict) -> np.ndarray:
        """The landmarks with one frame's expression (``k``: each track's value there)."""
        return _deform(self.identity, self.iod, self.up, self.across, k)


@dataclass
class Stage:
    """Where the portrait is drawn: the output ``height`` and ``width``, the face's side,
    scale and centre there, and the warp's control points (the portrait's landmarks plus
    a ring and a frame of fixed points) with their triangles."""

    image: np.ndarray
    height: int
    width: int
    side: float
    face_scale: float
    centre_in: np.ndarray
    centre_out: np.ndarray
    fixed: np.ndarray
    src_points: np.ndarray
    triangles: np.ndarray

    @classmethod
    def frame(cls, spec, image: np.ndarray, base: np.ndarray, rng: np.random.Generator) -> "Stage":
        """The stage of a :class:`SampleSpec` (its size or canvas, face scale; a random
        small offset of the face's centre).

        Example:
            >>> import numpy as np
            >>> from expresso_xai.samples import SampleSpec, base_face
            >>> from expresso_xai.samples.face import Stage
            >>> stage = Stage.frame(SampleSpec(size=96), *base_face(), np.random.default_rng(0))
            >>> stage.height, stage.width, stage.src_points.shape
            (96, 96, (92, 2))
        """
        from scipy.spatial import Delaunay

        height, width = spec.canvas if spec.canvas else (spec.size, spec.size)
        side = min(height, width) if spec.canvas is None else spec.size
        face_scale = spec.face_scale * side / image.shape[0]
        centre_out = np.array([width / 2.0, height / 2.0]) + rng.normal(0, 0.02, 2) * side
        centre_in = np.array([image.shape[1] / 2.0, image.shape[0] / 2.0])
        ring = [centre_in + 1.6 * r * np.array([np.cos(a), np.sin(a)])
                for r in (image.shape[0] * 0.42,) for a in np.linspace(0, 2 * np.pi, 16, endpoint=False)]
        span = 4.0 * max(height, width) / face_scale
        frame_pts = [centre_in + span * np.array(p) for p in
                     [(-1, -1), (0, -1), (1, -1), (1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0)]]
        fixed = np.array(ring + frame_pts)
        src_points = np.concatenate([base, fixed])
        triangles = Delaunay(src_points).simplices
        return cls(image, height, width, side, face_scale, centre_in, centre_out, fixed, src_points, triangles)

    def place(self, points: np.ndarray, pose: dict) -> tuple[np.ndarray, float]:
        """Portrait points moved to the output frame by one frame's head ``pose`` (angle in
        degrees, ``dx``/``dy`` in fractions of the side, relative ``scale``), and the scale."""
        angle = np.deg2rad(pose["angle"])
        scale = self.face_scale * (1 + pose["scale"])
        rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        offset = self.centre_out + np.array([pose["dx"] * self.side, pose["dy"] * self.side])
        return (points - self.centre_in) @ rotation.T + offset, scale


def _blend(frame: np.ndarray, shade: np.ndarray, strength: float, opacity: float, colour) -> np.ndarray:
    """``colour`` laid over ``frame`` where the uint8 ``shade`` mask is drawn."""
    weight = (shade[..., None] / 255.0) * strength * opacity
    return frame * (1 - weight) + np.array(colour) * weight


def _shade_lids(frame: np.ndarray, landmarks: np.ndarray, closure: float, scale: float) -> np.ndarray:
    """Closed lids show a dark lash line along each upper lid."""
    import cv2

    for first in (36, 42):
        if closure > 0.6:
            lid = landmarks[[first, first + 1, first + 2, first + 3]]
            shade = np.zeros(frame.shape[:2], np.uint8)
            cv2.polylines(shade, [np.round(lid * 16).astype(np.int32).reshape(-1, 1, 2)], False, 255,
                          thickness=max(1, int(round(scale * 2))), lineType=cv2.LINE_AA, shift=4)
            frame = _blend(frame, shade, min(1.0, (closure - 0.6) / 0.3), 0.6, [60, 35, 30])
    return frame


def _shade_mouth(frame: np.ndarray, landmarks: np.ndarray, opening: float) -> np.ndarray:
    """An open mouth shows its dark inside."""
    import cv2

    if opening > 0.15:
        inner = landmarks[60:68]
        shade = np.zeros(frame.shape[:2], np.uint8)
        cv2.fillPoly(shade, [np.round(inner * 16).astype(np.int32).reshape(-1, 1, 2)], 255,
                     lineType=cv2.LINE_AA, shift=4)
        frame = _blend(frame, shade, min(1.0, opening * 1.5), 0.75, [45, 20, 25])
    return frame


def draw_frame(stage: Stage, identity: FaceIdentity, k: dict, pose: dict, side_light: float, noise: float,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One frame ``(H, W, 3)`` uint8 and its true landmarks ``(68, 2)``: the participant's
    expression ``k`` (each track's value at the frame), the head ``pose``, the light
    (``k["lighting"]``, brighter on one side by ``side_light``) and sensor ``noise``.

    Example:
        >>> import numpy as np
        >>> from expresso_xai.samples import SampleSpec, base_face
        >>> from expresso_xai.samples.face import FaceIdentity, Stage, draw_frame
        >>> rng = np.random.default_rng(0)
        >>> image, base = base_face()
        >>> k = {"eye_closure": 1.0, "brow_raise": 0, "brow_furrow": 0, "mouth_open": 0, "smile": 0, "lighting": 1}
        >>> pose = {"angle": 0.0, "dx": 0.0, "dy": 0.0, "scale": 0.0}
        >>> frame, landmarks = draw_frame(Stage.frame(SampleSpec(size=96), image, base, rng),
        ...                               FaceIdentity.draw(base, rng), k, pose, 0.0, 2.0, rng)
        >>> frame.shape, frame.dtype.name, landmarks.shape
        ((96, 96, 3), 'uint8', (68, 2))
    """
    points, scale = stage.place(np.concatenate([identity.expression(k), stage.fixed]), pose)
    frame = _warp(stage.image, stage.src_points, points, stage.triangles, (stage.height, stage.width))
    landmarks = points[:68]
    frame = _shade_lids(frame.astype(np.float32), landmarks, k["eye_closure"], scale)
    frame = _shade_mouth(frame, landmarks, k["mouth_open"])
    light = k["lighting"] * (1.0 + side_light * np.linspace(-1, 1, stage.width)[None, :, None])
    frame = frame * identity.tone * light + rng.normal(0, noise, frame.shape)
    return np.clip(np.round(frame), 0, 255).astype(np.uint8), landmarks
