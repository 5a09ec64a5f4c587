"""Action-unit proxies from 68 landmarks, for videos without OpenFace action units.

A proxy is a distance between landmarks that grows with one facial action, divided by the
frame's inter-ocular distance (outer eye corners, points 36 and 45) so that it does not
change with the size or position of the face; heights are measured along the face's own
vertical (perpendicular to the line through the outer eye corners), so that they do not
change when the head rolls either. They are not OpenFace intensities (0–5): their units
are inter-ocular distances, and only their changes within one participant mean
something, which is what a per-participant correlation or an onset needs.

Landmarks follow the iBUG 68-point scheme with the subject's left and right (points
36–41 are the subject's right eye), as in :mod:`expresso_xai.faces.facetrack`.
"""

from __future__ import annotations

import json

import numpy as np

from .facetrack import FaceTrack, eye_aspect_ratio

#: What each proxy measures, written into the result's attrs (``definitions``).
AU_PROXIES: dict[str, str] = {
    "AU01": "inner brow raiser: height of the inner brow ends (21, 22) above the inner eye corners (39, 42), "
            "mean of both sides, in inter-ocular distances (IOD)",
    "AU02": "outer brow raiser: height of the outer brow ends (17, 26) above the outer eye corners (36, 45), "
            "mean of both sides, in IOD",
    "AU04": "brow lowerer: minus (the AU01 inner brow height + the gap between the inner brow ends 21-22), in "
            "IOD; lowering and drawing the brows together both raise it",
    "AU12": "lip corner puller: distance between the lip corners (48, 54), in IOD",
    "AU25": "lips part: inner-lip opening, distance between the inner lips' midpoints (62, 66), in IOD",
    "AU26": "jaw drop: mouth height, distance between the outer lips' midpoints (51, 57), in IOD",
    "AU45": "blink (eye closure): 1 - eye aspect ratio (mean of both eyes) / the participant's open-eye ratio "
            "(the median of the upper half of its frames with a face, i.e. their 75th percentile); 0 open, "
            "about 1 closed",
}

OPEN_EYE_PERCENTILE = 75  # the median of the upper half: open even if the eyes are closed almost half the time


def _face_axes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(iod (T,), up (T, 2))``: inter-ocular distance and the unit vector from the eyes
    towards the forehead, perpendicular to the outer eye corners' line (image y points
    down, so a face upright in the frame has ``up = (0, -1)``)."""
    across = landmarks[:, 45] - landmarks[:, 36]
    iod = np.linalg.norm(across, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        across = across / iod[:, None]
    return iod, np.stack([across[:, 1], -across[:, 0]], axis=-1)


def _height(landmarks, up, iod, points, references) -> np.ndarray:
    """Mean height of ``points`` above their ``references`` along ``up``, in IOD."""
    offsets = landmarks[:, list(points)] - landmarks[:, list(references)]
    return np.einsum("tpk,tk->tp", offsets, up).mean(axis=1) / iod


def _distance(landmarks, iod, first: int, second: int) -> np.ndarray:
    return np.linalg.norm(landmarks[:, first] - landmarks[:, second], axis=-1) / iod


def _eye_closure(landmarks: np.ndarray, face_found: np.ndarray) -> np.ndarray:
    """AU45: 1 - EAR / the open-eye EAR of this track (NaN when it has no face)."""
    ratio = (eye_aspect_ratio(landmarks, "right") + eye_aspect_ratio(landmarks, "left")) / 2
    seen = ratio[face_found & np.isfinite(ratio)]
    if seen.size == 0:
        return np.full(len(ratio), np.nan)
    open_eye = float(np.percentile(seen, OPEN_EYE_PERCENTILE))
    return 1.0 - ratio / open_eye if open_eye > 0 else np.full(len(ratio), np.nan)


def landmark_action_units(faces: FaceTrack):
    """Action-unit proxies of a face track, frame by frame (NaN where no face).

    =====  ====================  ======================================================
    AU     action                proxy (distances in inter-ocular distances, IOD)
    =====  ====================  ======================================================
    AU01   inner brow raiser     inner brow ends' height above the inner eye corners
    AU02   outer brow raiser     outer brow ends' height above the outer eye corners
    AU04   brow lowerer          −(inner brow height + gap between the inner brow ends)
    AU12   lip corner puller     distance between the lip corners
    AU25   lips part             inner-lip opening (inner lips' midpoints)
    AU26   jaw drop              mouth height (outer lips' midpoints)
    AU45   blink                 1 − eye aspect ratio / the participant's open-eye ratio
    =====  ====================  ======================================================

    Every proxy grows with its action; each is unchanged when the landmarks are scaled,
    moved or rotated in the image. The exact landmark indices are in ``AU_PROXIES``
    and in the result's ``definitions`` attribute.

    Args:
        faces: the participant's :class:`~expresso_xai.faces.FaceTrack`.

    Returns:
        ``xr.DataArray(time, au)`` float32, ``time`` the track's frame indices
        ``0..T-1``, ``au`` the names above; attrs ``au_source = "landmarks"`` and
        ``definitions`` (JSON: AU name → definition).

    Example:
        >>> import numpy as np
        >>> from expresso_xai.faces import FaceTrack
        >>> from expresso_xai.samples import base_face
        >>> face = base_face()[1]
        >>> smile = face.copy(); smile[48, 0] -= 5; smile[54, 0] += 5   # lip corners apart
        >>> track = FaceTrack(np.stack([face, smile, face]), [True, True, False], np.ones(3),
        ...                   np.zeros((3, 4)), np.ones(3, int), (230, 230))
        >>> aus = landmark_action_units(track)
        >>> aus.dims, aus.au.values.tolist()
        (('time', 'au'), ['AU01', 'AU02', 'AU04', 'AU12', 'AU25', 'AU26', 'AU45'])
        >>> lips = aus.sel(au="AU12").values
        >>> bool(lips[1] > lips[0]), bool(np.isnan(lips[2])), aus.attrs["au_source"]
        (True, True, 'landmarks')
    """
    import xarray as xr

    landmarks = np.asarray(faces.landmarks, dtype=np.float64)
    iod, up = _face_axes(landmarks)
    with np.errstate(invalid="ignore", divide="ignore"):
        inner_brow = _height(landmarks, up, iod, (21, 22), (39, 42))
        values = {
            "AU01": inner_brow,
            "AU02": _height(landmarks, up, iod, (17, 26), (36, 45)),
            "AU04": -(inner_brow + _distance(landmarks, iod, 21, 22)),
            "AU12": _distance(landmarks, iod, 48, 54),
            "AU25": _distance(landmarks, iod, 62, 66),
            "AU26": _distance(landmarks, iod, 51, 57),
            "AU45": _eye_closure(landmarks, faces.face_found),
        }
    table = np.stack([values[name] for name in AU_PROXIES], axis=1).astype(np.float32)
    table[~faces.face_found] = np.nan
    return xr.DataArray(
        table, dims=("time", "au"), coords={"time": np.arange(len(faces)), "au": list(AU_PROXIES)},
        name="au_intensity",
        attrs={"long_name": "action-unit proxy from landmarks", "units": "inter-ocular distances (AU45: 1)",
               "au_source": "landmarks", "definitions": json.dumps(AU_PROXIES)},
    )


__all__ = ["AU_PROXIES", "OPEN_EYE_PERCENTILE", "landmark_action_units"]
