"""The demo data set: real NIfTI files on disk, read back with nibabel."""

from __future__ import annotations

import itertools
import os

import nibabel as nib
import numpy as np
import pytest

from lrsearch import demo
from lrsearch.demo import DEFAULT_SHAPE, DEFAULT_SUBJECTS, ensure_demo_data, write_demo_data
from lrsearch.errors import DataError

SHAPE = (24, 24, 24)


def label_of(image_path):
    return image_path.with_name(image_path.name.replace("_orig", "_brain"))


def load(image_path):
    image, label = nib.load(image_path), nib.load(label_of(image_path))
    return image, label, image.get_fdata(dtype=np.float32), np.asanyarray(label.dataobj)


def dice(a, b):
    return 2 * np.sum(a & b) / (np.sum(a) + np.sum(b))


@pytest.fixture(scope="module")
def demo_set(tmp_path_factory):
    directory = tmp_path_factory.mktemp("demo")
    return directory, write_demo_data(directory, subjects=3, shape=SHAPE)


def test_defaults():
    assert DEFAULT_SUBJECTS == 12
    assert DEFAULT_SHAPE == (40, 40, 40)


def test_files_are_named_like_ixi(demo_set):
    directory, images = demo_set
    assert [p.name for p in images] == [f"IXI00{i}_orig.nii.gz" for i in range(3)]
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [f"IXI00{i}_orig.nii.gz" for i in range(3)] + [f"IXI00{i}_brain.nii.gz" for i in range(3)]
    )


def test_image_and_label_agree_in_type_shape_and_space(demo_set):
    for path in demo_set[1]:
        image, label, voxels, mask = load(path)
        assert image.get_data_dtype() == np.float32
        assert label.get_data_dtype() == np.uint8
        assert set(np.unique(mask)) == {0, 1}
        assert image.shape == label.shape == SHAPE
        np.testing.assert_array_equal(image.affine, label.affine)
        np.testing.assert_allclose(image.header.get_zooms(), (1, 1, 1))
        assert nib.aff2axcodes(image.affine) == ("R", "A", "S")
        for header in (image.header, label.header):
            assert int(header["qform_code"]) == 1
            assert int(header["sform_code"]) == 1
        assert 0 <= voxels.min() and 300 < voxels.max() < 2000  # scanner-like range


def test_brain_is_a_fifth_to_two_fifths_of_the_volume_and_inside_it(demo_set):
    for path in demo_set[1]:
        mask = load(path)[3].astype(bool)
        assert 0.15 < mask.mean() < 0.45
        for axis in range(3):
            border = np.take(mask, [0, 1, -2, -1], axis=axis)
            assert not border.any(), f"brain touches the border of axis {axis}"


def test_brain_is_brighter_than_background(demo_set):
    for path in demo_set[1]:
        voxels, mask = load(path)[2:]
        brain, rest = voxels[mask == 1].mean(), voxels[mask == 0].mean()
        assert brain > 2 * rest


def test_no_intensity_threshold_finds_the_brain(demo_set):
    for path in demo_set[1]:
        voxels, mask = load(path)[2:]
        mask = mask.astype(bool)
        thresholds = np.quantile(voxels, np.linspace(0.01, 0.99, 99))
        best = max(max(dice(voxels > t, mask), dice(voxels < t, mask)) for t in thresholds)
        assert 0.5 < best < 0.9  # informative, but not by itself


def test_same_arguments_give_identical_files(tmp_path, demo_set):
    again = write_demo_data(tmp_path, subjects=3, shape=SHAPE)
    for first, second in zip(demo_set[1], again, strict=True):
        for a, b in ((first, second), (label_of(first), label_of(second))):
            assert a.read_bytes() == b.read_bytes()
            assert a.read_bytes()[4:8] == bytes(4)  # gzip mtime 0: equal on another day too


def test_subject_does_not_depend_on_how_many_are_written(tmp_path, demo_set):
    (alone,) = write_demo_data(tmp_path, subjects=1, shape=SHAPE)
    assert alone.read_bytes() == demo_set[1][0].read_bytes()


def test_subjects_differ(demo_set):
    volumes = [load(path) for path in demo_set[1]]
    for (_, _, a, mask_a), (_, _, b, mask_b) in itertools.pairwise(volumes):
        assert np.abs(a - b).mean() > 20
        assert dice(mask_a == 1, mask_b == 1) < 0.97


def test_seed_changes_the_data(tmp_path, demo_set):
    (other,) = write_demo_data(tmp_path, subjects=1, shape=SHAPE, seed=1)
    assert not np.array_equal(load(other)[3], load(demo_set[1][0])[3])


def test_shape_need_not_be_cubic(tmp_path):
    (path,) = write_demo_data(tmp_path, subjects=1, shape=(20, 28, 24))
    image, label, _, mask = load(path)
    assert image.shape == label.shape == (20, 28, 24)
    assert 0.1 < mask.mean() < 0.45


def test_ensure_creates_a_set_in_a_new_nested_directory(tmp_path):
    target = tmp_path / "a" / "demo"
    images = ensure_demo_data(target, subjects=2, shape=SHAPE)
    assert images == [target / "IXI000_orig.nii.gz", target / "IXI001_orig.nii.gz"]
    assert len(list(target.iterdir())) == 4
    assert os.listdir(tmp_path / "a") == ["demo"]  # no staging folder left behind


def test_ensure_interrupted_leaves_nothing_that_looks_like_a_set(tmp_path, monkeypatch):
    phantom, calls = demo._phantom, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return phantom(*args)

    monkeypatch.setattr(demo, "_phantom", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ensure_demo_data(tmp_path / "demo", subjects=2, shape=SHAPE)
    assert os.listdir(tmp_path) == []

    monkeypatch.setattr(demo, "_phantom", phantom)
    assert len(ensure_demo_data(tmp_path / "demo", subjects=2, shape=SHAPE)) == 2
    assert len(os.listdir(tmp_path / "demo")) == 4


def test_ensure_reuses_a_complete_set(tmp_path):
    images = ensure_demo_data(tmp_path / "demo", subjects=2, shape=SHAPE)
    files = sorted((tmp_path / "demo").iterdir())
    stamps = [p.stat().st_mtime_ns for p in files]
    for p in files:  # an old stamp, so a rewrite could not keep it by chance
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    assert ensure_demo_data(tmp_path / "demo", subjects=2, shape=SHAPE) == images
    assert [p.stat().st_mtime_ns for p in files] == [1_000_000_000] * len(stamps)


def test_ensure_completes_a_partial_set(tmp_path):
    reference = write_demo_data(tmp_path / "reference", subjects=2, shape=SHAPE)
    target = tmp_path / "demo"
    ensure_demo_data(target, subjects=2, shape=SHAPE)
    (target / "IXI001_brain.nii.gz").unlink()
    truncated = target / "IXI000_orig.nii.gz"  # as an interrupted copy leaves it
    truncated.write_bytes(truncated.read_bytes()[:5000])
    (target / "IXI001_orig.nii.gz").write_bytes(b"garbage")

    images = ensure_demo_data(target, subjects=2, shape=SHAPE)

    assert sorted(p.name for p in target.iterdir()) == sorted(
        p.name for p in (tmp_path / "reference").iterdir()
    )
    for made, expected in zip(images, reference, strict=True):
        assert made.read_bytes() == expected.read_bytes()
        assert label_of(made).read_bytes() == label_of(expected).read_bytes()


def test_ensure_replaces_a_set_made_with_other_arguments(tmp_path):
    target = tmp_path / "demo"
    ensure_demo_data(target, subjects=3, shape=SHAPE, seed=1)
    images = ensure_demo_data(target, subjects=2, shape=(20, 20, 20), seed=0)
    assert len(list(target.iterdir())) == 4
    for path in images:
        assert load(path)[0].shape == (20, 20, 20)
    assert (
        images[0].read_bytes()
        == write_demo_data(tmp_path / "reference", subjects=1, shape=(20, 20, 20))[0].read_bytes()
    )


def test_ensure_keeps_files_it_did_not_write(tmp_path):
    target = tmp_path / "demo"
    target.mkdir()
    foreign = target / "IXI000_orig.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.float32), np.eye(4)), foreign)
    before = foreign.read_bytes()
    with pytest.raises(DataError, match="IXI000_orig.nii.gz"):
        ensure_demo_data(target, subjects=1, shape=SHAPE)
    assert foreign.read_bytes() == before


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"subjects": 0}, "subjects must be at least 1, but got 0"),
        ({"subjects": 2.5}, "subjects must be at least 1, but got 2.5"),
        ({"shape": (24, 15, 24)}, r"at least 16, but got \(24, 15, 24\)"),
        ({"shape": (24, 24)}, r"shape must be 3 integers, but got \(24, 24\)"),
        ({"seed": -1}, "seed must be a non-negative integer, but got -1"),
    ],
)
@pytest.mark.parametrize("function", [write_demo_data, ensure_demo_data])
def test_bad_arguments_raise_data_error_and_write_nothing(tmp_path, function, arguments, message):
    kwargs = {"subjects": 1, "shape": SHAPE, **arguments}
    with pytest.raises(DataError, match=message):
        function(tmp_path / "demo", **kwargs)
    assert not (tmp_path / "demo").exists()


def test_a_file_in_the_way_is_a_data_error(tmp_path):
    (tmp_path / "demo").write_text("not a directory")
    with pytest.raises(DataError, match="is not a directory"):
        ensure_demo_data(tmp_path / "demo", subjects=1, shape=SHAPE)


@pytest.mark.parametrize("function", [write_demo_data, ensure_demo_data])
def test_read_only_directory_is_a_data_error_naming_it(tmp_path, function):
    target = tmp_path / "demo"
    target.mkdir()
    target.chmod(0o555)
    try:
        try:
            (target / "probe").touch()
        except PermissionError:
            pass
        else:
            pytest.skip("this user may write to read-only directories (root)")
        with pytest.raises(DataError, match=f"{target}.*permission denied.*writable"):
            function(target, subjects=1, shape=SHAPE)
    finally:
        target.chmod(0o755)
