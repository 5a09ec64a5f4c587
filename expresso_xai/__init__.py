"""expresso-xai: explain video models of faces, region by region and moment by moment.

The data flow runs one way (see the design notes)::

    load_video -> track_faces -> FaceCrop / region_map -> model -> explain -> cube

Example:
    >>> import expresso_xai as ex
    >>> video = ex.load_video(ex.samples.sample_path("participant_low"), max_frames=16)
    >>> faces = ex.track_faces(video, progress=False)
    >>> ex.region_map(faces).names[:2]
    ('right_eye', 'left_eye')
"""

from importlib.metadata import PackageNotFoundError, version

from . import crop, errors, faces, models, regions, samples
from .faces import FaceTrack, read_openface, track_faces
from .crop import FaceCrop
from .regions import RegionMap, RegionScheme, region_map
from .clips import Clip, iter_clips
from .video import Video, load_video, stream_video
from .explain import explain
from .cube import open_cube
from .evaluate import evaluate, open_evaluation
from . import cohort, cube, figures

try:
    __version__ = version("expresso-xai")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"


def __getattr__(name: str):
    # ``ex.widgets`` imports anywidget (which brings ipywidgets and traitlets): only when asked for.
    if name == "widgets":
        import importlib

        module = importlib.import_module(".widgets", __name__)
        globals()["widgets"] = module
        return module
    raise AttributeError(f"module 'expresso_xai' has no attribute {name!r}")


__all__ = [
    "widgets", "Clip", "cohort", "evaluate", "open_evaluation", "FaceCrop", "explain", "figures", "models", "open_cube", "FaceTrack", "RegionMap", "RegionScheme", "Video", "errors", "faces",
    "iter_clips", "load_video", "read_openface", "region_map", "regions", "samples",
    "stream_video", "track_faces",
]
