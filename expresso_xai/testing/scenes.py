"""Tracking scenes: several faces, a pan that takes the subject out of view, a face
appearing after an empty stretch, a hand over the mouth and a head turn."""

from __future__ import annotations

import numpy as np

# --- tracking scenes -------------------------------------------------------------------

#: How the group scene's identities differ from the shared portrait: a skin tint per
#: channel and a horizontal stretch of the face (proportions), the first one unchanged.
SCENE_LOOKS = ((np.array([1.0, 1.0, 1.0]), 1.0), (np.array([1.2, 0.97, 0.78]), 0.84),
               (np.array([0.8, 0.97, 1.2]), 1.16))


def _scene_faces(n_frames: int, count: int, size: int, seed: int):
    """``count`` different generated faces: frames and true landmarks of each."""
    import cv2

    import expresso_xai as ex

    faces = []
    for index in range(count):
        tint, stretch = SCENE_LOOKS[index % len(SCENE_LOOKS)]
        spec = ex.samples.SampleSpec(seed=seed + index, seconds=n_frames / 25.0, size=size, head_motion=0.3,
                                     lighting_change=False, name=f"person{index}")
        sample = ex.samples.render(spec)
        width = int(round(size * stretch))
        frames = np.stack([cv2.resize(f, (width, size), interpolation=cv2.INTER_AREA) for f in sample.frames])
        frames = np.clip(frames * tint, 0, 255).astype(np.uint8)
        landmarks = sample.landmarks * np.array([width / size, 1.0], np.float32)
        faces.append((frames, landmarks))
    return faces


def pan_offsets(n_frames: int, away: float, start: int, out: int, back: int, end: int) -> np.ndarray:
    """A camera's horizontal offset per frame: 0 until ``start``, moving to ``away`` pixels
    by ``out``, holding, and moving back to 0 from ``back`` to ``end``.

    Example:
        >>> pan_offsets(8, 100, 1, 3, 5, 7).tolist()
        [0.0, 0.0, 50.0, 100.0, 100.0, 100.0, 50.0, 0.0]
    """
    return np.interp(np.arange(n_frames), [0, start, out, back, end], [0, 0, away, away, 0])


def group_scene(n_frames: int = 48, count: int = 3, size: int = 192, view: int | None = 420, pan: bool = True,
                seed: int = 40):
    """A group of ``count`` different faces side by side (tints and proportions of
    :data:`SCENE_LOOKS` on generated faces), filmed by a camera ``view`` pixels wide (None:
    the whole group) that pans right until the leftmost face is out of view (frames 18-28)
    and back (by frame 40).

    Returns:
        ``(video, truth)``: the :class:`~expresso_xai.Video` and the true landmarks of each
        face in the view's pixels, ``(count, T, 68, 2)`` (x outside ``[0, view)`` when out).

    Example:
        >>> video, truth = group_scene(n_frames=2, count=2, view=400, pan=False)
        >>> video.frames.shape, truth.shape
        ((2, 192, 400, 3), (2, 2, 68, 2))
    """
    import expresso_xai as ex

    faces = _scene_faces(n_frames, count, size, seed)
    gap = size // 12
    lefts = np.cumsum([gap] + [f.shape[2] + gap for f, _ in faces[:-1]])
    away = float(lefts[0] + faces[0][0].shape[2]) if pan else 0.0
    width = int(lefts[-1] + faces[-1][0].shape[2] + gap)
    view = width if view is None else view
    width = int(max(width, away + view))
    texture = np.random.default_rng(seed).integers(100, 140, size=(size, width, 1))
    canvas = np.repeat(np.broadcast_to(texture, (size, width, 3))[None], n_frames, axis=0).astype(np.uint8)
    for left, (frames, _) in zip(lefts, faces):
        canvas[:, :, left:left + frames.shape[2]] = frames
    offsets = np.round(pan_offsets(n_frames, away, 6, 18, 28, 40)).astype(int)
    frames = np.stack([canvas[t, :, offsets[t]:offsets[t] + view] for t in range(n_frames)])
    truth = np.stack([landmarks + np.stack([left - offsets, np.zeros(n_frames)], axis=1)[:, None].astype(np.float32)
                      for left, (_, landmarks) in zip(lefts, faces)])
    return ex.Video.from_array(frames, fps=25.0, source="generated:group"), truth


def face_appears(first: int = 37, n_frames: int = 64, size: int = 160, seed: int = 7):
    """A clip of an empty textured background until frame ``first``, then a generated face
    (cut in, as when a camera is switched on): where the face's first frame is known.

    Example:
        >>> video = face_appears(first=3, n_frames=5, size=96)
        >>> video.n_frames, bool(video.frames[0].std() < video.frames[4].std())
        (5, True)
    """
    import expresso_xai as ex

    spec = ex.samples.SampleSpec(seed=seed, seconds=(n_frames - first) / 25.0, size=size, name="appears")
    face = ex.samples.render(spec).frames
    texture = np.random.default_rng(seed).integers(110, 130, size=(1, size, size, 1))
    frames = np.repeat(np.broadcast_to(texture, (1, size, size, 3)), n_frames, axis=0).astype(np.uint8)
    frames[first:] = face[: n_frames - first]
    return ex.Video.from_array(frames, fps=25.0, source="generated:appears")


def _hand(shape: tuple[int, int], centre, iod: float, rng: np.random.Generator):
    """A hand-like occluder: a palm and four fingers, skin coloured with a little texture
    (so optical flow can follow it, as it follows a real hand): ``(mask, colour image)``."""
    import cv2

    mask = np.zeros(shape, np.uint8)
    cx, cy = float(centre[0]), float(centre[1])
    cv2.ellipse(mask, (int(cx), int(cy)), (int(0.4 * iod), int(0.32 * iod)), 0, 0, 360, 255, -1)
    for k, dx in enumerate((-0.3, -0.1, 0.1, 0.3)):
        top = (int(cx + dx * iod * 1.2), int(cy - (0.6 + 0.1 * (k in (1, 2))) * iod))
        cv2.line(mask, (int(cx + dx * iod), int(cy)), top, 255, max(2, int(0.14 * iod)), cv2.LINE_AA)
    shade = rng.normal(0, 12, shape + (1,)) + np.linspace(-20, 20, shape[1])[None, :, None]
    colour = np.clip(np.array([205, 150, 125]) + shade, 0, 255)
    return mask, colour


def _turn(frames: np.ndarray, landmarks: np.ndarray, degrees: np.ndarray):
    """A head turn about the face's vertical axis: each frame warped by the homography of
    a plane through the face turned by ``degrees`` (a flat face's turn: one side narrows
    in perspective), with the landmarks moved by the same map."""
    import cv2

    out, moved = frames.copy(), landmarks.copy()
    for t, angle in enumerate(np.deg2rad(degrees)):
        if abs(angle) < 1e-6:
            continue
        cx, cy = landmarks[t, 27:36].mean(axis=0)
        focal = 4.0 * np.linalg.norm(landmarks[t, 36] - landmarks[t, 45])
        centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1.0]])
        turn = np.array([[focal * np.cos(angle), 0, 0], [0, focal, 0], [-np.sin(angle), 0, focal]])
        homography = np.linalg.inv(centre) @ turn @ centre
        height, width = frames.shape[1:3]
        out[t] = cv2.warpPerspective(frames[t], homography, (width, height), borderMode=cv2.BORDER_REPLICATE)
        moved[t] = cv2.perspectiveTransform(landmarks[t][None].astype(np.float64), homography)[0]
    return out, moved


def occluded_face(n_frames: int = 60, size: int = 192, canvas: tuple[int, int] | None = None, seed: int = 21,
                  hand: float = 1.0):
    """A generated face that turns its head (to 25 degrees and back, over the first half)
    and then has a hand (``hand`` times a palm 0.8 inter-ocular distances wide) pass over
    its mouth, from the image's right to its left (over the second half): what tracking
    under occlusion is measured on.

    Returns:
        ``(video, truth, occluded)``: the :class:`~expresso_xai.Video`, the true landmarks
        ``(T, 68, 2)`` and ``(T,)`` bool, frames where the hand covers part of the mouth.

    Example:
        >>> video, truth, occluded = occluded_face(n_frames=20, size=128)
        >>> video.n_frames, truth.shape, 0 < int(occluded.sum()) < 10
        (20, (20, 68, 2), True)
    """
    import expresso_xai as ex

    spec = ex.samples.SampleSpec(seed=seed, seconds=n_frames / 25.0, size=size, canvas=canvas, head_motion=0.3,
                                 name="occluded")
    sample = ex.samples.render(spec)
    half = n_frames // 2
    degrees = np.concatenate([25 * np.sin(np.linspace(0, np.pi, half)), np.zeros(n_frames - half)])
    frames, truth = _turn(sample.frames, sample.landmarks, degrees)
    rng = np.random.default_rng(seed)
    occluded = np.zeros(n_frames, bool)
    for t in range(half, n_frames):
        mouth = truth[t, 48:68]
        iod = float(np.linalg.norm(truth[t, 36] - truth[t, 45]))
        along = (t - half) / max(1, n_frames - half - 1)
        centre = mouth.mean(axis=0) + np.array([(1 - 2 * along) * 1.8 * iod, 0.45 * iod])
        mask, colour = _hand(frames.shape[1:3], centre, hand * iod, rng)
        inside = mask[np.clip(mouth[:, 1].astype(int), 0, mask.shape[0] - 1),
                      np.clip(mouth[:, 0].astype(int), 0, mask.shape[1] - 1)]
        occluded[t] = bool((inside > 127).any())
        weight = mask[..., None] / 255.0
        frames[t] = np.round(frames[t] * (1 - weight) + colour * weight).astype(np.uint8)
    return ex.Video.from_array(frames, fps=25.0, source="generated:occluded"), truth, occluded
