"""Rendering a synthetic video: the events and head motion of a :class:`SampleSpec` played
on a participant's face, frame by frame, with the ground truth of what was drawn."""

from __future__ import annotations

import numpy as np

from .events import ground_truth, head_motion, schedule
from .face import FaceIdentity, Stage, base_face, draw_frame
from .spec import Sample, SampleSpec, SampleSpecError


def render(spec: SampleSpec, progress: bool = False) -> Sample:
    """Render the frames, true landmarks and ground truth of one synthetic video.

    Deterministic: the same spec gives the same pixels.

    Example:
        >>> import expresso_xai as ex
        >>> sample = ex.samples.render(ex.samples.SampleSpec(seed=1, seconds=2, score=63))
        >>> sample.landmarks.shape, sample.truth["score"] > 30
        ((50, 68, 2), True)
    """
    from tqdm.auto import tqdm

    # Every random choice comes from this one generator, in this order: same spec, same pixels.
    rng = np.random.default_rng(spec.seed)
    image, base = base_face()
    n_frames = int(round(spec.seconds * spec.fps))
    if n_frames < 1:
        raise SampleSpecError(f"a sample needs at least one frame; {spec.seconds} s at {spec.fps} fps gives none")
    tracks, events = schedule(spec, rng, n_frames)
    motion = head_motion(rng, n_frames, spec.fps, spec.head_motion)
    identity = FaceIdentity.draw(base, rng)
    stage = Stage.frame(spec, image, base, rng)
    frames = np.empty((n_frames, stage.height, stage.width, 3), np.uint8)
    true_landmarks = np.empty((n_frames, 68, 2), np.float32)
    side_light = rng.uniform(-0.12, 0.12)
    for t in tqdm(range(n_frames), desc=spec.name, disable=not progress, leave=False):
        k = {name: track[t] for name, track in tracks.items()}
        pose = {name: values[t] for name, values in motion.items()}
        frames[t], true_landmarks[t] = draw_frame(stage, identity, k, pose, side_light, spec.noise, rng)
    return Sample(frames, true_landmarks, ground_truth(spec, tracks, events, (stage.height, stage.width)))
