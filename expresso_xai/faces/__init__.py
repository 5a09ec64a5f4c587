"""Faces: 68-point landmarks found and tracked through a video, or imported from OpenFace.

``track_faces`` (dlib by default, any :class:`Landmarker` plugs in; one subject followed,
recognised by its :class:`Signature` when it comes back into view) and ``read_openface``
both return a :class:`FaceTrack`; the next step, :mod:`expresso_xai.regions`, turns it into
labelled pixels. ``landmark_action_units`` derives action-unit proxies from a track when
OpenFace's are not at hand.
"""

from .facetrack import (
    LANDMARK_GROUPS,
    MIRROR_PERMUTATION,
    QUALITY_GROUPS,
    FaceTrack,
    eye_aspect_ratio,
    inter_ocular_distance,
)
from .landmarkers import (
    Detection,
    DlibLandmarker,
    Landmarker,
    default_landmarker,
    face_recognition_model_path,
)
from .openface import read_openface, read_openface_for
from .proxies import AU_PROXIES, landmark_action_units
from .subject import Signature
from .tracking import track_faces

__all__ = [
    "AU_PROXIES",
    "LANDMARK_GROUPS",
    "MIRROR_PERMUTATION",
    "QUALITY_GROUPS",
    "Detection",
    "DlibLandmarker",
    "FaceTrack",
    "Landmarker",
    "default_landmarker",
    "eye_aspect_ratio",
    "face_recognition_model_path",
    "inter_ocular_distance",
    "landmark_action_units",
    "read_openface",
    "read_openface_for",
    "Signature",
    "track_faces",
]
