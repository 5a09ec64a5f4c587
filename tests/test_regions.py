"""Regions: labelled pixels that line up with what the model sees."""

from __future__ import annotations

import numpy as np
import pytest

import expresso_xai as ex
from expresso_xai.errors import RegionError
from expresso_xai.regions import (
    BOX_REGIONS, NO_REGION, PARTITION_REGIONS, BoxScheme, in_region, label_dtype, label_encoding, relabel,
)


@pytest.fixture(scope="module")
def crop(short_faces):
    return ex.FaceCrop.from_track(short_faces, size=(112, 112))


@pytest.fixture(scope="module")
def partition(short_faces, crop):
    return ex.region_map(short_faces, crop)


def _swap_sides(name: str) -> str:
    if name.startswith("right_"):
        return "left_" + name[6:]
    if name.startswith("left_"):
        return "right_" + name[5:]
    return name


def test_partition_gives_every_pixel_exactly_one_label(partition):
    assert partition.labels.shape == (48, 112, 112)
    assert partition.names == PARTITION_REGIONS
    assert partition.exclusive
    assert partition.labels.max() < len(PARTITION_REGIONS)
    np.testing.assert_array_equal(partition.masks().sum(axis=1), 1)
    np.testing.assert_array_equal(partition.area().sum("region").values, 112 * 112)
    # every named face region is present in every frame
    area = partition.area()
    assert (area.drop_sel(region="background") > 0).all()


def test_region_sums_conserve_the_total_in_a_partition(partition, rng):
    values = rng.normal(size=partition.labels.shape)
    pooled = partition.pool(values)
    np.testing.assert_allclose(pooled.sum(axis=1), values.sum(axis=(1, 2)), rtol=1e-10)
    eye = partition.names.index("right_eye")
    np.testing.assert_allclose(pooled[:, eye], (values * partition.mask("right_eye")).sum(axis=(1, 2)))


@pytest.mark.parametrize(
    "region, points",
    [("right_eye", range(36, 42)), ("left_eye", range(42, 48)), ("mouth", range(60, 68)), ("nose", [29, 30, 33])],
)
def test_regions_contain_their_landmarks(short_faces, crop, partition, region, points):
    in_crop = crop.apply_landmarks(short_faces.landmarks)[:, list(points)]
    cols = np.clip(np.round(in_crop[..., 0]).astype(int), 0, 111)
    rows = np.clip(np.round(in_crop[..., 1]).astype(int), 0, 111)
    labels = partition.labels[np.arange(len(partition))[:, None], rows, cols]
    assert (labels == PARTITION_REGIONS.index(region)).all()


def test_eye_regions_keep_their_size_when_the_eyes_close(short_faces, partition):
    closed = short_faces.eye_aspect_ratio("right") < 0.2
    assert closed.any() and (~closed).any()
    area = partition.area().sel(region="right_eye").values
    assert area[closed].mean() == pytest.approx(area[~closed].mean(), rel=0.2)


def test_mirroring_the_video_swaps_left_and_right(short_video, partition):
    mirrored_faces = ex.track_faces(short_video.mirrored(), progress=False)
    mirrored = ex.region_map(mirrored_faces)
    flipped = mirrored.labels[:, :, ::-1]
    swapped = np.array([PARTITION_REGIONS.index(_swap_sides(n)) for n in PARTITION_REGIONS])[flipped]
    face = partition.labels != PARTITION_REGIONS.index("background")
    agreement = (swapped == partition.labels)[face].mean()
    assert agreement > 0.9, f"only {agreement:.1%} of face pixels agree after mirroring"
    # and the labels really moved: without the swap, eyes would not line up
    unswapped = (flipped == partition.labels)[partition.mask("right_eye")].mean()
    assert unswapped < 0.2


def test_frames_without_a_face_are_all_background(short_video):
    frames = short_video.frames.copy()
    frames[5:9] = 0
    with pytest.warns(ex.errors.NoFaceWarning):
        faces = ex.track_faces(ex.Video.from_array(frames), progress=False)
    region_map = ex.region_map(faces)
    assert not region_map.face_found[5:9].any()
    assert (region_map.labels[5:9] == PARTITION_REGIONS.index("background")).all()
    assert (region_map.labels[10] != PARTITION_REGIONS.index("background")).any()
    boxes = ex.region_map(faces, scheme="boxes")
    assert boxes.mask("background")[5:9].all() and not boxes.mask("right_eye")[5:9].any()


def test_boxes_reproduce_the_reference_study_padding(short_faces, crop):
    boxes = ex.region_map(short_faces, crop, scheme="boxes")
    assert boxes.names == BOX_REGIONS and not boxes.exclusive
    points = crop.apply_landmarks(short_faces.landmarks)
    eye = points[0, 36:42]
    (x0, y0), (x1, y1) = eye.min(0), eye.max(0)
    padded = BoxScheme().boxes(points[0])["right_eye"]
    assert padded == pytest.approx((x0 - 0.25 * (x1 - x0), y0 - 0.25 * (y1 - y0),
                                    x1 + 0.25 * (x1 - x0), y1 + 0.25 * (y1 - y0)))
    # unpadded groups are the plain bounding box
    nose = points[0, 27:35]
    assert BoxScheme().boxes(points[0])["nose"] == pytest.approx((*nose.min(0), *nose.max(0)))
    # boxes overlap (the jaw box holds the mouth), so pooled sums exceed the total
    overlap = boxes.mask("jaw") & boxes.mask("mouth")
    assert overlap.any()
    values = np.ones(boxes.labels.shape)
    assert (boxes.pool(values).sum(axis=1) > values.sum(axis=(1, 2))).all()
    # a pixel in no box is background, and only those are
    in_any = boxes.masks()[:, :-1].any(axis=1)
    np.testing.assert_array_equal(boxes.mask("background"), ~in_any)


def test_the_crop_maps_frames_and_landmarks_alike(short_video, short_faces, crop):
    # Paint a dot on the nose tip in the source frames; it must land where the crop
    # says the nose-tip landmark lands.
    frames = short_video.frames.copy()
    tips = short_faces.landmarks[:, 30]
    for t, (x, y) in enumerate(tips):
        frames[t, int(round(y)) - 2 : int(round(y)) + 3, int(round(x)) - 2 : int(round(x)) + 3] = (255, 0, 255)
        tips[t] = (round(x), round(y))
    cropped = crop.apply(frames).astype(int)
    magenta = (cropped[..., 0] > 200) & (cropped[..., 1] < 60) & (cropped[..., 2] > 200)
    predicted = crop.apply_landmarks(tips[:, None])[:, 0]
    for t in range(len(frames)):
        rows, cols = np.nonzero(magenta[t])
        assert len(rows), f"dot lost in frame {t}"
        assert abs(cols.mean() - predicted[t, 0]) < 1.0 and abs(rows.mean() - predicted[t, 1]) < 1.0
    back = crop.invert_points(crop.apply_landmarks(short_faces.landmarks))
    np.testing.assert_allclose(back, short_faces.landmarks, atol=1e-3)


def test_crop_smoothing_steadies_the_crop(short_faces):
    raw = ex.FaceCrop.from_track(short_faces, smoothing=None).matrices
    smooth = ex.FaceCrop.from_track(short_faces, smoothing=2.0).matrices
    fixed = ex.FaceCrop.from_track(short_faces, smoothing=float("inf")).matrices
    jitter = lambda m: np.abs(np.diff(m[:, :, 2], axis=0)).mean()  # noqa: E731
    assert jitter(smooth) < jitter(raw)
    assert jitter(fixed) == 0


def test_crop_output_size_and_region_map_follow_the_model_input(short_video, short_faces):
    crop = ex.FaceCrop.from_track(short_faces, size=(64, 80))
    assert crop.apply(short_video).shape == (48, 64, 80, 3)
    assert ex.region_map(short_faces, crop).labels.shape == (48, 64, 80)
    with pytest.raises(RegionError, match="slice the crop"):
        crop.apply(short_video.frames[:10])
    assert crop[np.arange(10)].apply(short_video.frames[:10]).shape == (10, 64, 80, 3)


def test_bad_requests_name_what_exists(partition, short_faces):
    with pytest.raises(RegionError, match="partition.*boxes|boxes.*partition"):
        ex.region_map(short_faces, scheme="voronoi")
    with pytest.raises(RegionError, match="right_eye"):
        partition.mask("eyes")
    with pytest.raises(RegionError, match="do not match"):
        partition.pool(np.zeros((2, 3, 4)))


def test_in_region_reads_both_label_encodings():
    index = np.array([[0, 1], [2, 255]], np.uint8)
    np.testing.assert_array_equal(in_region(index, 1, "index"), [[False, True], [False, False]])
    bits = np.array([[0b001, 0b011], [0b110, 0]], np.uint16)
    np.testing.assert_array_equal(in_region(bits, 1, "bits"), [[False, True], [True, False]])
    np.testing.assert_array_equal(in_region(bits, 2, "bits"), [[False, False], [True, False]])
    assert label_encoding(True) == "index" and label_dtype("index") == np.uint8
    assert label_encoding(False) == "bits" and label_dtype("bits") == np.uint16
    with pytest.raises(RegionError, match=r"'flags'.*\['index', 'bits'\]"):
        in_region(index, 0, "flags")


def test_region_maps_store_labels_in_their_schemes_encoding(partition, short_faces, crop):
    assert partition.encoding == "index" and partition.labels.dtype == label_dtype("index")
    boxes = ex.region_map(short_faces, crop, scheme="boxes")
    assert boxes.encoding == "bits" and boxes.labels.dtype == label_dtype("bits")
    for r, name in enumerate(BOX_REGIONS):
        np.testing.assert_array_equal(boxes.mask(name), in_region(boxes.labels, r, "bits"))


def test_relabel_follows_a_subset_and_a_new_order_of_the_regions(partition):
    stored = list(PARTITION_REGIONS)
    current = ["background", "mouth", "left_eye"]  # as after cube.sel(region=current)
    labels = relabel(partition.labels, stored, current, "index")
    assert labels.dtype == np.uint8
    for r, name in enumerate(current):
        np.testing.assert_array_equal(labels == r, partition.mask(name))
    dropped = ~np.isin(partition.labels, [stored.index(n) for n in current])
    assert (labels[dropped] == NO_REGION).all()
    assert relabel(partition.labels, stored, stored, "index") is partition.labels


def test_relabel_moves_bit_flags_and_drops_the_bits_of_dropped_regions(short_faces, crop):
    boxes = ex.region_map(short_faces, crop, scheme="boxes")
    current = ["mouth", "background", "nose"]
    labels = relabel(boxes.labels, BOX_REGIONS, current, "bits")
    assert labels.dtype == np.uint16
    for r, name in enumerate(current):
        np.testing.assert_array_equal(in_region(labels, r, "bits"), boxes.mask(name))
    assert labels.max() < 1 << len(current)  # no bit left for the dropped regions


def test_the_crop_lives_in_its_own_module_and_keeps_its_old_import():
    from expresso_xai.crop import FaceCrop
    from expresso_xai.regions import FaceCrop as old_name

    assert ex.FaceCrop is FaceCrop is old_name
