"""Ground truths for the localisation metrics: a boolean ``DataArray(time, region)`` on a
cube's frames and regions saying where the signal is.

Two sources build one: a synthetic sample's ground-truth JSON
(:func:`expresso_xai.samples.truth_mask`, its planted events) and an OpenFace 2.0 CSV
(:func:`au_truth`, the facial regions each present action unit moves, by the table
``AU_REGIONS``). Both go through the two helpers here, so a truth is always checked
against the cube's video the same way (:func:`check_truth_video`) and laid on the cube's
axes the same way (:func:`blank_truth`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import EvaluationError

#: The regions of the ``partition`` scheme that each action unit OpenFace 2.0 reports
#: moves, from the appearance changes the FACS manual describes for it (Ekman, Friesen &
#: Hager 2002, *Facial Action Coding System: the manual*, chapters on the upper face,
#: the lower face and the eyes; the muscle behind each unit in brackets):
#:
#: ====  =========================================  ==========================================
#: AU    name (muscle)                              regions: the FACS appearance changes
#: ====  =========================================  ==========================================
#: AU01  inner brow raiser (frontalis, medial)      brows, forehead: inner brows up, horizontal
#:                                                  wrinkles across the centre of the forehead
#: AU02  outer brow raiser (frontalis, lateral)     brows, forehead: outer brows up, wrinkles
#:                                                  above the lateral brow
#: AU04  brow lowerer (corrugator, depressor        brows: brows lowered and drawn together
#:       supercilii, procerus)
#: AU05  upper lid raiser (levator palpebrae)       eyes: eye aperture widened
#: AU06  cheek raiser (orbicularis oculi, orbital)  cheeks, eyes: cheeks lifted, crow's feet,
#:                                                  the eye narrowed from below
#: AU07  lid tightener (orbicularis oculi,          eyes: lids tightened, the lower lid raised
#:       palpebral)
#: AU09  nose wrinkler (levator labii superioris    nose, cheeks: wrinkles along the nose, the
#:       alaeque nasi)                              infraorbital triangle pulled up
#: AU10  upper lip raiser (levator labii            mouth, cheeks: upper lip raised, the
#:       superioris)                                nasolabial furrow deepened
#: AU12  lip corner puller (zygomaticus major)      mouth, cheeks: lip corners pulled up and
#:                                                  back, the nasolabial furrow deepened
#: AU14  dimpler (buccinator)                       mouth, cheeks: lip corners tightened,
#:                                                  dimples beside them
#: AU15  lip corner depressor (depressor anguli     mouth, jaw: lip corners pulled down, skin
#:       oris)                                      below them bulged
#: AU17  chin raiser (mentalis)                     jaw, mouth: the chin boss pushed up, the
#:                                                  lower lip with it
#: AU20  lip stretcher (risorius, platysma)         mouth, cheeks: lips stretched sideways,
#:                                                  skin beyond the corners pulled out
#: AU23  lip tightener (orbicularis oris)           mouth: lips tightened, narrowed
#: AU25  lips part (depressor labii, relaxed        mouth: lips apart
#:       mentalis)
#: AU26  jaw drop (relaxed masseter, temporalis)    mouth, jaw: the mandible lowered
#: AU28  lip suck (orbicularis oris)                mouth: lips pulled in (OpenFace gives only
#:                                                  its presence)
#: AU45  blink (relaxed levator palpebrae,          eyes: the eyes closed
#:       orbicularis oculi)
#: ====  =========================================  ==========================================
#:
#: Left and right together: OpenFace does not report sides. A cube of another scheme
#: keeps the regions it has (the ``boxes`` scheme has no cheeks or forehead).
AU_REGIONS: dict[str, tuple[str, ...]] = {
    "AU01": ("right_brow", "left_brow", "forehead"),
    "AU02": ("right_brow", "left_brow", "forehead"),
    "AU04": ("right_brow", "left_brow"),
    "AU05": ("right_eye", "left_eye"),
    "AU06": ("right_cheek", "left_cheek", "right_eye", "left_eye"),
    "AU07": ("right_eye", "left_eye"),
    "AU09": ("nose", "right_cheek", "left_cheek"),
    "AU10": ("mouth", "right_cheek", "left_cheek"),
    "AU12": ("mouth", "right_cheek", "left_cheek"),
    "AU14": ("mouth", "right_cheek", "left_cheek"),
    "AU15": ("mouth", "jaw"),
    "AU17": ("jaw", "mouth"),
    "AU20": ("mouth", "right_cheek", "left_cheek"),
    "AU23": ("mouth",),
    "AU25": ("mouth",),
    "AU26": ("mouth", "jaw"),
    "AU28": ("mouth",),
    "AU45": ("right_eye", "left_eye"),
}

# Frame rates closer than this (relative) are one rate written two ways: 29.97 and 30 fps,
# or a CSV's rate read off timestamps OpenFace rounds to the millisecond.
_FPS_TOLERANCE = 0.01


def blank_truth(cube):
    """An all-``False`` truth on the cube's frames and regions: a boolean
    ``DataArray(time, region)`` with the cube's ``time`` and ``region`` coordinates.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> truth = blank_truth(example_cube())
        >>> truth.dims, str(truth.dtype), bool(truth.any())
        (('time', 'region'), 'bool', False)
    """
    import xarray as xr

    return xr.DataArray(np.zeros((cube.sizes["time"], cube.sizes["region"]), bool), dims=("time", "region"),
                        coords={"time": cube.time.values, "region": cube.region.values}, name="truth")


def _cube_fps(cube) -> float | None:
    """The cube's video frame rate: recorded by ``explain``, else read off ``seconds``."""
    if "video_fps" in cube.attrs:
        return float(cube.attrs["video_fps"])
    frames, seconds = cube.time.values, cube.seconds.values
    if len(frames) < 2 or seconds[-1] == seconds[0]:
        return None
    return float((frames[-1] - frames[0]) / (seconds[-1] - seconds[0]))


def check_truth_video(cube, n_frames: int, fps: float | None, source: str) -> None:
    """Refuse a ground truth (``source``: its file) made for another video than the cube's.

    The frame rates must agree, and every frame of the cube's video (``time[0]`` and the
    ``video_n_frames`` frames that ``explain`` recorded, else the cube's own frames) must
    be a frame of the truth's video. A cube of part of a video (``load_video(...,
    max_frames=...)`` or a slice) fits the truth of the whole video: its frames are
    picked out by their indices.

    Raises:
        EvaluationError: the frame rates differ, or the cube's video runs past the
            truth's; the message names both.

    Example:
        >>> from expresso_xai.testing import example_cube
        >>> check_truth_video(example_cube(fps=25.0), 250, 25.0, "long.json")  # fits
        >>> check_truth_video(example_cube(fps=25.0), 250, 30.0, "other.json")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        expresso_xai.errors.EvaluationError: other.json is for a video at 30 fps, the cube's video is at 25 fps; ...
    """
    first, last = int(cube.time.values[0]), int(cube.time.values[-1])
    end = first + int(cube.attrs["video_n_frames"]) if "video_n_frames" in cube.attrs else last + 1
    end = max(end, last + 1)
    cube_fps = _cube_fps(cube)
    advice = "pass the ground truth of the video the cube was computed from"
    if fps is not None and cube_fps is not None and abs(float(fps) - cube_fps) > _FPS_TOLERANCE * cube_fps:
        raise EvaluationError(f"{source} is for a video at {float(fps):g} fps, the cube's video is at "
                              f"{cube_fps:g} fps; {advice}")
    if end > int(n_frames):
        raise EvaluationError(f"{source} is for a video of {int(n_frames)} frames, the cube's video has "
                              f"{end} (frames {first} to {end - 1}); {advice}")


def _au_name(unit) -> str:
    """``"AU45"``, ``"au4"``, ``"AU04"``, ``4`` → OpenFace's ``"AU04"`` spelling."""
    match = re.fullmatch(r"(?:AU)?0*(\d+)", str(unit).strip(), flags=re.IGNORECASE)
    if match is None:
        raise EvaluationError(f"{unit!r} is not an action unit; use names like 'AU45' (AUs: {sorted(AU_REGIONS)})")
    return f"AU{int(match.group(1)):02d}"


def _action_units(openface):
    """The ``(time, au)`` action units of an OpenFace CSV path, of ``read_openface``'s
    ``(faces, action_units)`` or of its action units alone."""
    import xarray as xr

    from ..faces import read_openface

    if isinstance(openface, (str, Path)):
        return read_openface(openface)[1]
    if isinstance(openface, tuple) and len(openface) == 2:
        openface = openface[1]
    if not isinstance(openface, xr.DataArray) or set(openface.dims) != {"time", "au"}:
        raise EvaluationError("openface must be an OpenFace CSV path or what ex.read_openface(csv) returns, "
                              f"got {type(openface).__name__}")
    return openface


def _active(units, au: str, threshold: float | None) -> np.ndarray:
    """``(time,)`` bool: frames in which ``au`` is present (``AUxx_c``), or at least
    ``threshold`` intense (``AUxx_r``); NaN (no face, no column) is absent."""
    values = units.sel(au=au)
    values = values["presence"] if threshold is None else values
    values = np.asarray(values.values, dtype=np.float64)
    limit = 0.5 if threshold is None else float(threshold)
    return np.nan_to_num(values, nan=-np.inf) >= limit


def au_truth(openface, cube, aus=None, threshold: float | None = None):
    """The ground truth where action units are active: in each frame, the regions of
    every active unit (``AU_REGIONS``), on the cube's frames and regions.

    Args:
        openface: an OpenFace 2.0 CSV path, or what ``ex.read_openface(csv)`` returns
            (``(faces, action_units)``, or the action units alone).
        cube: the attribution cube the truth is for.
        aus: the units to use (``"AU45"``, ``"AU4"`` or ``45``); ``None``: every unit of
            ``AU_REGIONS`` the CSV reports.
        threshold: ``None``: a unit is active where OpenFace says it is present
            (``AUxx_c`` = 1); a number: where its intensity ``AUxx_r`` (0–5) is at least
            this (units with only a presence column are then never active).

    Returns:
        Boolean ``DataArray(time, region)``; frames without a face in the CSV mark nothing.

    Raises:
        EvaluationError: the CSV is for another video (its frames end before the cube's
            video does; the message names both counts), an action unit is unknown or
            not in the CSV.

    Example:
        >>> import numpy as np, expresso_xai as ex
        >>> from expresso_xai.cube import make_cube
        >>> from expresso_xai.regions import PARTITION_REGIONS
        >>> regions = list(PARTITION_REGIONS)
        >>> cube = make_cube(np.zeros((1, 250, 12)), explainers=["saliency"], time=np.arange(250),
        ...                  seconds=np.arange(250) / 25, regions=regions, region_area=np.ones((250, 12)),
        ...                  face_found=np.ones(250, bool), prediction=0.0)
        >>> truth = au_truth(ex.samples.sample_path("participant_high", "openface"), cube, aus=["AU45"])
        >>> sorted(truth.region.values[truth.any("time").values].tolist())
        ['left_eye', 'right_eye']
    """
    units = _action_units(openface)
    source = str(units.attrs.get("source", "the OpenFace action units"))
    check_truth_video(cube, units.sizes["time"], _csv_fps(units), source)
    available = [str(au) for au in units.au.values]
    names = [au for au in AU_REGIONS if au in available] if aus is None else [_au_name(au) for au in aus]
    for au in names:
        if au not in AU_REGIONS:
            raise EvaluationError(f"no facial regions are known for {au}; known: {sorted(AU_REGIONS)}")
        if au not in available:
            raise EvaluationError(f"{source} has no {au}; it has {available}")
    truth = blank_truth(cube)
    regions = set(cube.region.values.tolist())
    frames = cube.time.values
    for au in names:
        active = _active(units, au, threshold)[frames]
        kept = [region for region in AU_REGIONS[au] if region in regions]
        truth.loc[{"time": frames[active], "region": kept}] = True
    truth.attrs = {"source": source, "action_units": ",".join(names),
                   "rule": "present (AUxx_c)" if threshold is None else f"intensity AUxx_r >= {threshold:g}"}
    return truth


def _csv_fps(units) -> float | None:
    """The frame rate of the CSV's timestamps (OpenFace writes them to the millisecond)."""
    seconds = np.asarray(units.seconds.values, dtype=np.float64)
    if len(seconds) < 2 or seconds[-1] <= seconds[0]:
        return None
    return float((len(seconds) - 1) / (seconds[-1] - seconds[0]))
