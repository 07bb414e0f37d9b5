"""Formats: what we write opens in other tools and what they write opens here (issue 12), and the readers of
dacapo_nb.formats (issue 27): TIFF, image folders, HDF5, N5, zarr v3 / OME-Zarr 0.5, `open_array`, `convert_to_zarr`.

The oracles are independent implementations: ome-zarr-py (OME-NGFF 0.4 on zarr 2), funlib.persistence 0.6 and
gunpowder 1.4; zarr's own group walk stands for napari and the other browsers. The files of other formats are written
by their own libraries (tifffile, Pillow, h5py, zarr 2's N5 store, tensorstore), and gunpowder's Hdf5Source and
ZarrSource (which reverses N5 attributes) say what geometry they hold.
"""
import json

import funlib.persistence as fp
import gunpowder as gp
import numpy as np
import pytest
import zarr
from funlib.geometry import Coordinate, Roi
from ome_zarr.format import FormatV04
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader
from ome_zarr.scale import Scaler
from ome_zarr.writer import write_image, write_labels

from dacapo_nb.arrays import LocalArrayIdentifier, ZarrArray, ZarrArrayConfig

SNAPSHOT = ["raw", "gt", "target", "weight", "mask", "prediction", "gradients"]


def array_paths(container):
    "Every array zarr finds by walking the groups of `container` (what tree() prints)."
    found = []
    zarr.open_group(str(container), mode="r").visititems(
        lambda path, node: found.append(path) if isinstance(node, zarr.Array) else None)
    return sorted(found)


def ome_images(group):
    "ome-zarr-py's view of the image group `group`: [(axes, coordinateTransformations per level, level 0 data)]."
    nodes = [n for n in Reader(parse_url(str(group)))() if "coordinateTransformations" in n.metadata]
    return [([a["name"] for a in n.metadata["axes"]], n.metadata["coordinateTransformations"], np.asarray(n.data[0]))
            for n in nodes]


def create(container, dataset, roi, voxel_size, channels=None, axes=("z", "y", "x"), dtype=np.float32, fill=True):
    a = ZarrArray.create_from_array_identifier(LocalArrayIdentifier(container, dataset), list(axes), roi, channels,
                                               voxel_size, dtype)
    if fill:
        a[a.roi] = np.arange(np.prod(a.shape), dtype=dtype).reshape(a.shape)
    return a


# --- parent groups -----------------------------------------------------------------------------------------------

def test_snapshot_layout_is_walkable(tmp_path):
    c = tmp_path / "snapshots.zarr"
    for it in (0, 10):
        for name in SNAPSHOT:
            create(c, f"{it}/volumes/{name}", Roi((8, 0, 0), (32, 16, 16)), (8, 4, 4),
                   channels=3 if name in ("target", "prediction") else None, fill=False)
    expected = sorted(f"{it}/volumes/{n}" for it in (0, 10) for n in SNAPSHOT)
    assert array_paths(c) == expected, array_paths(c)
    tree = str(zarr.open_group(str(c), mode="r").tree())
    assert all(n in tree for n in SNAPSHOT), tree
    for group in ("", "0", "0/volumes", "10/volumes"):
        assert json.loads((c / group / ".zgroup").read_text()) == {"zarr_format": 2}, group


def test_deep_nesting_and_old_containers(tmp_path):
    c = tmp_path / "deep.zarr"
    create(c, "a/b/c/d/raw", Roi((0, 0), (8, 8)), (2, 2), axes=("y", "x"))
    assert array_paths(c) == ["a/b/c/d/raw"]
    old = tmp_path / "old.zarr"  # the layout we wrote before: root group and array, nothing in between
    zarr.open_group(str(old), mode="w")
    zarr.open_array(str(old / "1" / "volumes" / "raw"), mode="w", shape=(4, 4), dtype=np.uint8).attrs.update(
        {"axes": ["y", "x"], "resolution": [2, 2], "offset": [2, 4]})
    assert array_paths(old) == []
    assert ZarrArray.open_from_array_identifier(LocalArrayIdentifier(old, "1/volumes/raw")).roi == Roi((2, 4), (8, 8))
    # reusing the identical array (a resumed run) repairs the groups; it keeps '.' chunk keys, so no NGFF entry
    ZarrArray.create_from_array_identifier(LocalArrayIdentifier(old, "1/volumes/raw"), ["y", "x"], Roi((2, 4), (8, 8)),
                                           None, (2, 2), np.uint8)
    assert array_paths(old) == ["1/volumes/raw"]
    assert "multiscales" not in zarr.open_group(str(old / "1" / "volumes"), mode="r").attrs


def test_gunpowder_and_funlib_read_nested_arrays(tmp_path):
    c = tmp_path / "s.zarr"
    a = create(c, "0/volumes/prediction", Roi((8, 0, 4), (16, 8, 8)), (8, 4, 4), channels=2)
    key = gp.ArrayKey("P")
    source = gp.ZarrSource(str(c), {key: "0/volumes/prediction"})
    with gp.build(source):
        batch = source.request_batch(gp.BatchRequest({key: gp.ArraySpec(roi=gp.Roi((8, 0, 4), (8, 4, 4)))}))
    assert batch[key].spec.voxel_size == Coordinate(8, 4, 4)
    np.testing.assert_array_equal(batch[key].data, a[Roi((8, 0, 4), (8, 4, 4))])
    ds = fp.open_ds(str(c / "0/volumes/prediction"))
    assert (ds.roi, ds.voxel_size, ds.axis_names) == (a.roi, a.voxel_size, ["c^", "z", "y", "x"])


# --- channel axes of funlib.persistence -------------------------------------------------------------------------

@pytest.mark.parametrize("shape,voxel_size,offset,axes", [
    ((2, 10, 12), (4, 4), (0, 20), ["c", "d0", "d1"]),
    ((3, 5, 6, 7), (8, 4, 4), (16, 0, 8), ["c", "d0", "d1", "d2"]),
    ((2, 3, 6, 7), (4, 4), (0, 0), ["b", "c", "d0", "d1"]),
])
def test_funlib_default_channel_arrays(tmp_path, shape, voxel_size, offset, axes):
    store = str(tmp_path / "f.zarr" / "x")
    theirs = fp.prepare_ds(store, shape=shape, offset=offset, voxel_size=voxel_size, dtype=np.float32)
    theirs[theirs.roi] = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    reopened = fp.open_ds(store)
    ours = ZarrArray.open_from_array_identifier(LocalArrayIdentifier(tmp_path / "f.zarr", "x"))
    assert ours.axes == axes, (ours.axes, theirs.axis_names)
    assert (ours.roi, ours.voxel_size) == (reopened.roi, reopened.voxel_size)
    assert ours.num_channels == shape[axes.index("c")]
    np.testing.assert_array_equal(ours[ours.roi], reopened[reopened.roi])


def test_funlib_mismatch_names_the_values(tmp_path):
    fp.prepare_ds(str(tmp_path / "f.zarr" / "x"), shape=(2, 10, 12), voxel_size=(4, 4), dtype=np.float32)
    zarr.open_array(str(tmp_path / "f.zarr" / "x"), mode="r+").attrs["voxel_size"] = [4, 4, 4]
    with pytest.raises(ValueError, match=r"axis_names \['c0\^', 'd0', 'd1'\]\) name 2 spatial axes but the voxel size \(4, 4, 4\)"):
        ZarrArray.open_from_array_identifier(LocalArrayIdentifier(tmp_path / "f.zarr", "x"))


def test_we_write_what_funlib_reads_as_channels(tmp_path):
    a = create(tmp_path / "o.zarr", "t", Roi((0, 8), (8, 8)), (2, 2), channels=2, axes=("y", "x"))
    ds = fp.open_ds(str(tmp_path / "o.zarr" / "t"))
    assert (ds.axis_names, ds.roi, ds.voxel_size) == (["c^", "y", "x"], a.roi, a.voxel_size)


# --- OME-NGFF 0.4: ours -> ome-zarr-py -> ours ------------------------------------------------------------------

def test_round_trip_ours_ome_zarr_ours(tmp_path):
    ours = create(tmp_path / "ours.zarr", "volumes/prediction", Roi((40, 16, 8), (80, 32, 32)), (8, 4, 4), channels=2)
    [(axes, transforms, data)] = ome_images(tmp_path / "ours.zarr" / "volumes")
    assert axes == ["c", "z", "y", "x"]
    assert transforms == [[{"type": "scale", "scale": [1.0, 8.0, 4.0, 4.0]},
                           {"type": "translation", "translation": [0.0, 40.0, 16.0, 8.0]}]]
    np.testing.assert_array_equal(data, ours[ours.roi])
    # ome-zarr-py writes what it read (axes with nm units, its transformations) into a new image
    multiscale = zarr.open_group(str(tmp_path / "ours.zarr" / "volumes"), mode="r").attrs["multiscales"][0]
    group = zarr.open_group(str(tmp_path / "theirs.zarr"), mode="w").create_group("image")
    write_image(data, group, scaler=None, axes=multiscale["axes"], coordinate_transformations=transforms, fmt=FormatV04())
    back = ZarrArray.open_from_array_identifier(LocalArrayIdentifier(tmp_path / "theirs.zarr", "image"))
    assert (back.axes, back.roi, back.voxel_size, back.dtype) == (ours.axes, ours.roi, ours.voxel_size, ours.dtype)
    np.testing.assert_array_equal(back[back.roi], ours[ours.roi])


def test_every_entry_we_write_is_valid_ngff(tmp_path):
    c = tmp_path / "s.zarr"
    for name in SNAPSHOT:
        create(c, f"0/volumes/{name}", Roi((8, 0, 0), (16, 8, 8)), (8, 4, 4),
               channels=2 if name == "prediction" else None, fill=False)
    create(c, "top", Roi((0, 0), (8, 8)), (2, 2), axes=("y", "x"), fill=False)
    fmt = FormatV04()
    for group, names in (("0/volumes", SNAPSHOT), ("", ["top"])):
        multiscales = zarr.open_group(str(c / group), mode="r").attrs["multiscales"]
        assert [m["name"] for m in multiscales] == names
        for m in multiscales:
            [level] = m["datasets"]
            shape = zarr.open_array(str(c / group / level["path"]), mode="r").shape
            fmt.validate_coordinate_transformations(len(shape), 1, [level["coordinateTransformations"]])
            assert len(m["axes"]) == len(shape) and m["version"] == "0.4"
            meta = json.loads((c / group / level["path"] / ".zarray").read_text())
            assert meta["dimension_separator"] == "/"
    # ome-zarr-py shows the first image of the snapshot group: raw, with our geometry
    [(axes, transforms, _)] = ome_images(c / "0" / "volumes")
    assert (axes, transforms[0][0]["scale"], transforms[0][1]["translation"]) == (["z", "y", "x"], [8.0, 4.0, 4.0], [8.0, 0.0, 0.0])


def test_rewriting_replaces_the_entry(tmp_path):
    c = tmp_path / "r.zarr"
    create(c, "v/raw", Roi((0, 0, 0), (16, 8, 8)), (8, 4, 4), fill=False)
    create(c, "v/gt", Roi((0, 0, 0), (16, 8, 8)), (8, 4, 4), fill=False)
    create(c, "v/raw", Roi((0, 0, 0), (16, 8, 8)), (8, 4, 4), fill=False)  # reused: nothing changes
    ZarrArray.create_from_array_identifier(LocalArrayIdentifier(c, "v/raw"), ["z", "y", "x"], Roi((8, 0, 0), (16, 8, 8)),
                                           None, (4, 4, 4), np.float32, overwrite=True)
    multiscales = zarr.open_group(str(c / "v"), mode="r").attrs["multiscales"]
    assert [m["name"] for m in multiscales] == ["raw", "gt"]
    assert multiscales[0]["datasets"][0]["coordinateTransformations"] == [
        {"type": "scale", "scale": [4.0, 4.0, 4.0]}, {"type": "translation", "translation": [8.0, 0.0, 0.0]}]
    # an array NGFF cannot hold (one spatial axis) drops the entry it had, and the others stay
    ZarrArray.create_from_array_identifier(LocalArrayIdentifier(c, "v/gt"), ["x"], Roi((0,), (8,)), None, (4,),
                                           np.float32, overwrite=True)
    assert [m["name"] for m in zarr.open_group(str(c / "v"), mode="r").attrs["multiscales"]] == ["raw"]
    assert array_paths(c) == ["v/gt", "v/raw"]


# --- OME-NGFF 0.4 written by ome-zarr-py -------------------------------------------------------------------------

UM_AXES = [{"name": "c", "type": "channel"}] + [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"]


@pytest.fixture
def ome_image(tmp_path):
    "An OME-NGFF 0.4 image written by ome-zarr-py: 2 channels, 3 levels (y/x halved), a translation, and labels."
    group = zarr.open_group(str(tmp_path / "ome.zarr"), mode="w").create_group("image")
    pixels = np.arange(2 * 4 * 32 * 32, dtype=np.uint16).reshape(2, 4, 32, 32)
    transforms = [[{"type": "scale", "scale": [1.0, 0.05, 0.004 * 2**l, 0.004 * 2**l]},
                   {"type": "translation", "translation": [0.0, 1.0, 0.064, 0.128]}] for l in range(3)]
    write_image(pixels, group, scaler=Scaler(max_layer=2), axes=UM_AXES, coordinate_transformations=transforms,
                fmt=FormatV04())
    labels = (np.arange(4 * 32 * 32) // 500).astype(np.uint32).reshape(4, 32, 32)
    write_labels(labels, group, "nuclei", scaler=Scaler(max_layer=2), axes=UM_AXES[1:], fmt=FormatV04(),
                 coordinate_transformations=[[{"type": "scale", "scale": t[0]["scale"][1:]},
                                              {"type": "translation", "translation": t[1]["translation"][1:]}]
                                             for t in transforms])
    return tmp_path / "ome.zarr", group, pixels, labels


def test_we_read_ome_zarr_levels(ome_image):
    c, group, pixels, labels = ome_image
    assert array_paths(c) == ["image/0", "image/1", "image/2", "image/labels/nuclei/0", "image/labels/nuclei/1",
                              "image/labels/nuclei/2"]
    for level, vs in enumerate([(50, 4, 4), (50, 8, 8), (50, 16, 16)]):
        by_path = ZarrArray.open_from_array_identifier(LocalArrayIdentifier(c, f"image/{level}"))
        by_size = ZarrArray.open_from_array_identifier(LocalArrayIdentifier(c, "image"), level=vs)
        by_index = ZarrArray(ZarrArrayConfig("img", c, "image", level=level))
        for a in (by_path, by_size, by_index):
            assert (a.dataset, a.level, a.voxel_size, a.axes) == (f"image/{level}", level, Coordinate(vs), ["c", "z", "y", "x"])
            assert a.roi == Roi((1000, 64, 128), (200, 128, 128)), a.roi
            np.testing.assert_array_equal(a[a.roi], group[str(level)][:])
    np.testing.assert_array_equal(ZarrArray.open_from_array_identifier(LocalArrayIdentifier(c, "image/0"))[
        Roi((1000, 64, 128), (50, 4, 8))], pixels[:, :1, :1, :2])
    lab = ZarrArray.open_from_array_identifier(LocalArrayIdentifier(c, "image/labels/nuclei"), level=(50, 8, 8))
    assert (lab.dataset, lab.axes, lab.roi) == ("image/labels/nuclei/1", ["z", "y", "x"], Roi((1000, 64, 128), (200, 128, 128)))
    np.testing.assert_array_equal(ZarrArray.open_from_array_identifier(LocalArrayIdentifier(c, "image/labels/nuclei/0"))[
        Roi((1000, 64, 128), (200, 128, 128))], labels)


def test_ome_zarr_image_feeds_gunpowder_through_our_source(ome_image):
    from dacapo_nb.sources import DaCapoArraySource
    c, group, pixels, _ = ome_image
    a = ZarrArray.open_from_array_identifier(LocalArrayIdentifier(c, "image"))
    key = gp.ArrayKey("RAW")
    source = DaCapoArraySource(a, key)
    with gp.build(source):
        batch = source.request_batch(gp.BatchRequest({key: gp.ArraySpec(roi=gp.Roi((1050, 64, 128), (50, 8, 8)))}))
    np.testing.assert_array_equal(batch[key].data, pixels[:, 1:2, :2, :2])


def _write_level0(tmp_path, multiscale, shape=(2, 4, 8, 8)):
    "A one-level image with hand-written (possibly wrong) metadata."
    group = zarr.open_group(str(tmp_path / "bad.zarr"), mode="w")
    group.zeros("0", shape=shape, dtype=np.uint8, dimension_separator="/")
    group.attrs["multiscales"] = [multiscale]
    return LocalArrayIdentifier(tmp_path / "bad.zarr", "0")


def _level(scale=(1, 0.05, 0.004, 0.004), translation=None):
    transforms = [{"type": "scale", "scale": list(scale)}]
    if translation is not None:
        transforms.append({"type": "translation", "translation": list(translation)})
    return [{"path": "0", "coordinateTransformations": transforms}]


@pytest.mark.parametrize("multiscale,message", [
    ({"version": "0.4", "axes": UM_AXES[1:], "datasets": _level()},
     r"multiscales\[0\] of '/'.axes names 3 axes \['z', 'y', 'x'\] but the data of level 0 has 4 dimensions"),
    ({"version": "0.4", "axes": UM_AXES, "datasets": [{"path": "0", "coordinateTransformations": [
        {"type": "translation", "translation": [0, 0, 0, 0]}]}]},
     r"datasets\[0\].coordinateTransformations has 0 'scale' transformations"),
    ({"version": "0.4", "axes": UM_AXES, "datasets": [{"path": "0"}]},
     r"datasets\[0\].coordinateTransformations is None"),
    ({"version": "0.4", "axes": UM_AXES[:3] + [{"name": "x", "type": "space", "unit": "pixel"}], "datasets": _level()},
     r"axes\[3\].unit is 'pixel' \(axis 'x'\), not a length unit of OME-NGFF 0.4"),
    ({"version": "0.4", "axes": UM_AXES, "datasets": _level(scale=(1, 0.05, 0.0045, 0.004))},
     r"scale of axis 'y' is 0.0045 micrometer = 4.5 nm, not a whole number of nm"),
    ({"version": "0.4", "axes": UM_AXES, "datasets": _level(translation=(0, 0, 0, 0.0005))},
     r"translation of axis 'x' is 0.0005 micrometer = 0.5 nm, not a whole number of nm"),
    ({"version": "0.4", "axes": UM_AXES, "datasets": _level(scale=(1, 0.05, 0.004))},
     r"scale \[1, 0.05, 0.004\] has 3 values for 4 axes"),
    ({"version": "0.3", "axes": ["c", "z", "y", "x"], "datasets": _level()}, r"multiscales\[0\] of '/'.version is '0.3'"),
])
def test_contradicting_ome_metadata_names_the_field(tmp_path, multiscale, message):
    ident = _write_level0(tmp_path, multiscale)
    with pytest.raises(ValueError, match=message):
        ZarrArray.open_from_array_identifier(ident)


def test_translation_off_the_voxel_grid_is_refused(tmp_path):
    ident = _write_level0(tmp_path, {"version": "0.4", "axes": UM_AXES, "datasets": _level(translation=(0, 0, 0.002, 0))})
    with pytest.raises(ValueError, match=r"is not on the voxel grid \(50, 4, 4\)"):
        ZarrArray.open_from_array_identifier(ident)


def test_zarr_v3_ngff_05_says_what_to_do(tmp_path):
    "ZarrArray (zarr 2) points to open_array, which opens zarr v3 (test_ome_zarr_05_through_tensorstore below)."
    c = tmp_path / "v3.zarr"
    (c / "image" / "s0").mkdir(parents=True)
    (c / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}))
    (c / "image" / "zarr.json").write_text(json.dumps(
        {"zarr_format": 3, "node_type": "group", "attributes": {"ome": {"version": "0.5", "multiscales": []}}}))
    for dataset in ("image", "image/s0"):
        with pytest.raises(ValueError, match="zarr v3 .* OME-NGFF 0.5: ZarrArray is zarr 2 .* dacapo_nb.formats.open_array"):
            ZarrArray.open_from_array_identifier(LocalArrayIdentifier(c, dataset))
    with pytest.raises(ValueError, match="zarr v3"):
        ZarrArray.create_from_array_identifier(LocalArrayIdentifier(c, "pred"), ["y", "x"], Roi((0, 0), (4, 4)), None,
                                               (1, 1), np.uint8)


def test_a_dacapo_snapshot_opens_in_the_viewer_aligned_in_world_units(tmp_path):
    "A snapshot laid out as dacapo-ml 0.3.5 writes it: offsets in voxels, 'c^' named on raw, no group attributes."
    from dacapo_nb.widgets import SnapshotViewer
    container = tmp_path / "snapshots.zarr"
    zarr.open_group(str(container), mode="w")
    for name, shape, offset, names in [("raw", (44, 44), 0, ["c^", "y", "x"]), ("prediction", (2, 28, 28), 8, ["c^", "y", "x"])]:
        a = zarr.open_array(str(container / "3" / "volumes" / name), mode="w", shape=shape, dtype="f4")
        a[:] = np.arange(np.prod(shape), dtype="f4").reshape(shape) / np.prod(shape)
        a.attrs.update({"axis_names": names, "offset": [offset] * 2, "units": ["", ""], "voxel_size": [4, 4]})
    viewer = SnapshotViewer(container, volumes=("raw", "prediction"), watch=None)
    assert viewer.iterations == [3], viewer.iterations
    assert [(t, i.shape[:2]) for t, i, _ in viewer.view["panels"]] == [("raw", (28, 28)), ("prediction", (28, 28))], viewer.view
    raw = viewer.view["panels"][0][1]
    np.testing.assert_array_equal(raw, np.arange(44 * 44, dtype="f4").reshape(44, 44)[8:36, 8:36] / (44 * 44))  # 8 voxels in


# --- issue 27: the readers of dacapo_nb.formats, against independent writers ---------------------------------------

import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import tensorstore as ts
import tifffile
from PIL import Image

from dacapo_nb.formats import (Hdf5Array, ImageFolderArray, N5Array, TiffArray, Zarr3Array, array_format, convert_to_zarr,
                               open_array)

VOLUME = np.arange(12 * 10 * 14, dtype=np.uint16).reshape(12, 10, 14)  # z y x
SUB = Roi((80, 8, 12), (120, 24, 28))  # world units at voxel size (40, 4, 4) and offset (0, 0, 0): voxels [2:5, 2:8, 3:10]
SUB_SLICES = np.s_[2:5, 2:8, 3:10]


def check(array, cls, voxel_size, offset, axes, data, sub=None, sub_slices=None):
    "`array` is a `cls` with this geometry, holds `data`, and a sub-box read equals numpy slicing."
    assert type(array) is cls, (type(array), cls)
    assert (array.voxel_size, array.roi.offset, array.axes) == (Coordinate(voxel_size), Coordinate(offset), axes), array
    assert array.roi.shape == Coordinate(s for a, s in zip(axes, data.shape) if a not in "bc") * Coordinate(voxel_size), array
    np.testing.assert_array_equal(array[array.roi], data)
    if sub is not None:
        np.testing.assert_array_equal(array[sub], data[sub_slices])


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_tiff_stack(tmp_path, compression):
    tifffile.imwrite(tmp_path / "stack.tif", VOLUME, photometric="minisblack", compression=compression)
    a = open_array(tmp_path / "stack.tif", voxel_size=(40, 4, 4))
    check(a, TiffArray, (40, 4, 4), (0, 0, 0), ["z", "y", "x"], VOLUME, SUB, SUB_SLICES)
    assert a.memory_mapped == (compression is None)
    moved = open_array(tmp_path / "stack.tif", voxel_size=(40, 4, 4), offset=(400, 40, 0))
    np.testing.assert_array_equal(moved[SUB.shift(Coordinate(400, 40, 0))], VOLUME[SUB_SLICES])


def test_tiff_2d(tmp_path):
    tifffile.imwrite(tmp_path / "one.tiff", VOLUME[0])
    check(open_array(tmp_path / "one.tiff", voxel_size=(4, 4)), TiffArray, (4, 4), (0, 0), ["y", "x"], VOLUME[0],
          Roi((8, 12), (24, 28)), np.s_[2:8, 3:10])


def test_plain_tiff_warns_about_its_voxel_size(tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", VOLUME, photometric="minisblack")
    with pytest.warns(UserWarning, match="stores no physical size: voxel size 1 nm per axis assumed; pass voxel_size"):
        assert open_array(tmp_path / "stack.tif").voxel_size == Coordinate(1, 1, 1)


def test_ome_tiff_physical_sizes(tmp_path):
    "OME-TIFF with two channels, PhysicalSizeX/Y in µm and Z in µm: converted to nm, the channel axis first as stored."
    data = np.stack([VOLUME, VOLUME + 1])  # c z y x
    tifffile.imwrite(tmp_path / "cells.ome.tif", data, ome=True, photometric="minisblack", compression="zlib",
                     metadata={"axes": "CZYX", "PhysicalSizeX": 0.004, "PhysicalSizeXUnit": "µm",
                               "PhysicalSizeY": 0.004, "PhysicalSizeYUnit": "µm", "PhysicalSizeZ": 0.04})
    a = open_array(tmp_path / "cells.ome.tif")
    check(a, TiffArray, (40, 4, 4), (0, 0, 0), ["c", "z", "y", "x"], data, SUB, (slice(None),) + SUB_SLICES)
    assert a.num_channels == 2


def test_ome_tiff_not_whole_nm_says_what_to_do(tmp_path):
    tifffile.imwrite(tmp_path / "fine.ome.tif", VOLUME, ome=True, metadata={"axes": "ZYX", "PhysicalSizeX": 0.1032,
                                                                           "PhysicalSizeY": 0.1032, "PhysicalSizeZ": 0.5})
    with pytest.raises(ValueError, match=r"PhysicalSizeY is 0.1032 micrometer = 103.2 nm, not a whole number of nm.*voxel_size="):
        open_array(tmp_path / "fine.ome.tif")
    assert open_array(tmp_path / "fine.ome.tif", voxel_size=(500, 103, 103)).voxel_size == Coordinate(500, 103, 103)


def test_tiff_reads_only_the_pages_of_the_roi(tmp_path, monkeypatch):
    tifffile.imwrite(tmp_path / "stack.tif", VOLUME, photometric="minisblack", compression="zlib")
    a = open_array(tmp_path / "stack.tif", voxel_size=(40, 4, 4))
    pages = []
    for cls in (tifffile.TiffPage, tifffile.TiffFrame):  # tifffile's page access
        original = cls.asarray
        monkeypatch.setattr(cls, "asarray", lambda self, *args, _original=original, **kw: pages.append(self.index) or _original(self, *args, **kw))
    np.testing.assert_array_equal(a[SUB], VOLUME[SUB_SLICES])
    assert sorted(set(pages)) == [2, 3, 4], pages


PEAK_RSS = """
import re, sys, warnings
from funlib.geometry import Roi
from dacapo_nb.formats import open_array
rss = lambda: int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024  # peak RSS
open("/proc/self/clear_refs", "w").write("5")  # the peak starts again here: importing torch peaked higher than a stack read
before = rss()
a = open_array(sys.argv[1], voxel_size=(1, 1, 1))
section = a[Roi((a.roi.shape[0] // 2, 0, 0), (1, a.roi.shape[1], a.roi.shape[2]))]
assert section.sum() > 0
one = rss() - before
whole = a[a.roi]  # the check can fail: reading everything grows the peak by the stack's size
print(one, a.memory_mapped, rss() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="resetting the peak RSS needs Linux's /proc")
@pytest.mark.parametrize("compression", [None, "zlib"])
def test_reading_one_section_of_a_200_mb_stack_does_not_load_it(tmp_path, compression):
    """Peak RSS (VmHWM, reset after the imports) of a fresh process that opens a ~200 MB TIFF stack and reads one section
    stays far below the stack's size (a whole read grows it by 200 MB: checked in the same process)."""
    depth, edge = 200, 1000
    page = (np.arange(edge * edge, dtype=np.uint32).reshape(edge, edge) % 251).astype(np.uint8)
    tifffile.imwrite(tmp_path / "big.tif", (page for _ in range(depth)), shape=(depth, edge, edge), dtype=np.uint8,
                     photometric="minisblack", compression=compression, compressionargs={"level": 1} if compression else None)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, "-c", PEAK_RSS, str(tmp_path / "big.tif")], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    grown, mapped, whole = out.stdout.split()
    assert mapped == str(compression is None), out.stdout
    assert int(grown) < depth * edge * edge / 10 < int(whole), (int(grown), depth * edge * edge, int(whole))


def test_image_folder_natural_order(tmp_path):
    for z in range(12):  # PNG and TIFF mixed; slice_10 and slice_11 sort after slice_9
        if z % 2: Image.fromarray(VOLUME[z]).save(tmp_path / f"slice_{z}.png")
        else: tifffile.imwrite(tmp_path / f"slice_{z}.tif", VOLUME[z])
    a = open_array(tmp_path, voxel_size=(40, 4, 4))
    check(a, ImageFolderArray, (40, 4, 4), (0, 0, 0), ["z", "y", "x"], VOLUME, SUB, SUB_SLICES)
    assert [f.name for f in a.files][8:] == ["slice_8.tif", "slice_9.png", "slice_10.tif", "slice_11.png"]


def test_image_folder_refuses_a_mismatch_naming_the_file(tmp_path):
    for z in range(3): Image.fromarray(VOLUME[z]).save(tmp_path / f"s{z}.png")
    Image.fromarray(VOLUME[3, :5]).save(tmp_path / "s3.png")
    with pytest.raises(ValueError, match=r"s3.png has shape \(5, 14\) and dtype uint16, but s0.png \(the first section\) has shape \(10, 14\)"):
        ImageFolderArray(tmp_path, voxel_size=(1, 1, 1))


def test_hdf5_with_gunpowder_attributes(tmp_path):
    with h5py.File(tmp_path / "sample.h5", "w") as f:
        d = f.create_dataset("volumes/raw", data=VOLUME, chunks=(4, 5, 7))
        d.attrs["resolution"], d.attrs["offset"] = (40, 4, 4), (400, 40, 0)
    a = open_array(tmp_path / "sample.h5/volumes/raw")
    check(a, Hdf5Array, (40, 4, 4), (400, 40, 0), ["z", "y", "x"], VOLUME, SUB.shift(Coordinate(400, 40, 0)), SUB_SLICES)
    assert open_array(tmp_path / "sample.h5", "volumes/raw").roi == a.roi
    key = gp.ArrayKey("RAW")  # gunpowder's own HDF5 reader sees the same geometry and voxels
    source = gp.Hdf5Source(str(tmp_path / "sample.h5"), {key: "volumes/raw"})
    with gp.build(source):
        assert (source.spec[key].roi, source.spec[key].voxel_size) == (a.roi, a.voxel_size)
        batch = source.request_batch(gp.BatchRequest({key: gp.ArraySpec(roi=SUB.shift(Coordinate(400, 40, 0)))}))
    np.testing.assert_array_equal(batch[key].data, a[SUB.shift(Coordinate(400, 40, 0))])


def test_n5_with_funlib_and_gunpowder_conventions(tmp_path):
    "resolution, offset and axes stored x y z (as gunpowder's ZarrWrite and daisy write N5); gunpowder reads them reversed too."
    n5 = zarr.open_array(store=zarr.N5Store(str(tmp_path / "sample.n5")), path="volumes/raw", mode="w", shape=VOLUME.shape,
                         chunks=(4, 5, 7), dtype=VOLUME.dtype)
    n5[:] = VOLUME
    n5.attrs.update({"resolution": [4, 4, 40], "offset": [0, 40, 400], "axes": ["x", "y", "z"]})
    a = open_array(tmp_path / "sample.n5/volumes/raw")
    check(a, N5Array, (40, 4, 4), (400, 40, 0), ["z", "y", "x"], VOLUME, SUB.shift(Coordinate(400, 40, 0)), SUB_SLICES)
    key = gp.ArrayKey("RAW")
    source = gp.ZarrSource(str(tmp_path / "sample.n5"), {key: "volumes/raw"})
    with gp.build(source):
        assert (source.spec[key].roi, source.spec[key].voxel_size) == (a.roi, a.voxel_size)


def test_n5_written_by_funlib_06_keeps_data_order(tmp_path):
    "funlib.persistence 0.6 on an N5 store writes voxel_size, offset and axis_names in the data's order (z y x)."
    ds = fp.prepare_ds(zarr.N5Store(str(tmp_path / "f.n5")), path="raw", shape=VOLUME.shape, offset=(400, 40, 0),
                       voxel_size=(40, 4, 4), axis_names=["z", "y", "x"], dtype=VOLUME.dtype)
    assert json.loads((tmp_path / "f.n5" / "raw" / "attributes.json").read_text())["voxel_size"] == [40, 4, 4]
    ds[ds.roi] = VOLUME
    check(open_array(tmp_path / "f.n5" / "raw"), N5Array, (40, 4, 4), (400, 40, 0), ["z", "y", "x"], VOLUME)


def test_ome_zarr_04_image_group_opens_level_0(ome_image):
    c, group, pixels, labels = ome_image
    a = open_array(c / "image")
    check(a, ZarrArray, (50, 4, 4), (1000, 64, 128), ["c", "z", "y", "x"], pixels)
    assert (a.dataset, a.writable) == ("image/0", False)
    assert open_array(c / "image" / "labels" / "nuclei").dataset == "image/labels/nuclei/0"


def write_zarr3(path, data, chunks, attributes=None, dimension_names=None):
    "A zarr v3 array written by tensorstore, with attributes in its zarr.json."
    metadata = {"chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}}}
    if dimension_names: metadata["dimension_names"] = dimension_names
    store = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}, "metadata": metadata},
                    create=True, dtype=str(data.dtype), shape=data.shape).result()
    store[...] = data
    if attributes:
        meta = json.loads((Path(path) / "zarr.json").read_text())
        (Path(path) / "zarr.json").write_text(json.dumps({**meta, "attributes": attributes}))


def write_group(path, attributes):
    Path(path).mkdir(parents=True, exist_ok=True)
    (Path(path) / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": attributes}))


def ome_05_image(group, data):
    "An OME-Zarr 0.5 image: levels s0, s1 (y/x halved) written by tensorstore, multiscales under attributes.ome."
    axes = [{"name": "c", "type": "channel"}] + [{"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"]
    write_group(group, {"ome": {"version": "0.5", "multiscales": [{"name": "raw", "axes": axes, "datasets": [
        {"path": f"s{l}", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 0.04, 0.004 * 2**l, 0.004 * 2**l]},
                                                         {"type": "translation", "translation": [0.0, 0.4, 0.04, 0.0]}]}
        for l in range(2)]}]}})
    write_zarr3(group / "s0", data, (1, 4, 5, 7), dimension_names=["c", "z", "y", "x"])
    write_zarr3(group / "s1", data[:, :, ::2, ::2], (1, 4, 5, 7), dimension_names=["c", "z", "y", "x"])


def test_ome_zarr_05_through_tensorstore(tmp_path):
    data = np.stack([VOLUME, VOLUME * 2])
    ome_05_image(tmp_path / "ome5.zarr", data)
    sub = SUB.shift(Coordinate(400, 40, 0))
    for path, level, vs, expected in [(tmp_path / "ome5.zarr", "s0", (40, 4, 4), data),
                                      (tmp_path / "ome5.zarr" / "s1", "s1", (40, 8, 8), data[:, :, ::2, ::2])]:
        a = open_array(path)
        check(a, Zarr3Array, vs, (400, 40, 0), ["c", "z", "y", "x"], expected)
        assert a.dataset == level
    np.testing.assert_array_equal(open_array(tmp_path / "ome5.zarr")[sub], data[(slice(None),) + SUB_SLICES])


def test_bioformats2raw_roots(tmp_path, ome_image):
    "zarr v3 (0.5): the root's attributes.ome carries the layout and the image is 0/; zarr 2 (0.4): .zattrs the same."
    data = np.stack([VOLUME, VOLUME * 2])
    write_group(tmp_path / "b2r.zarr", {"ome": {"version": "0.5", "bioformats2raw.layout": 3}})
    ome_05_image(tmp_path / "b2r.zarr" / "0", data)
    a = open_array(tmp_path / "b2r.zarr")
    check(a, Zarr3Array, (40, 4, 4), (400, 40, 0), ["c", "z", "y", "x"], data)
    assert a.dataset == "0/s0"
    c, group, pixels, _ = ome_image  # ome-zarr-py's image, moved under a bioformats2raw root of zarr 2
    root = zarr.open_group(str(tmp_path / "b2r2.zarr"), mode="w")
    root.attrs["bioformats2raw.layout"] = 3
    zarr.copy_all(group, root.create_group("0"))
    zarr.open_group(str(tmp_path / "b2r2.zarr" / "0"), mode="r+").attrs.update(group.attrs.asdict())
    b = open_array(tmp_path / "b2r2.zarr")
    check(b, ZarrArray, (50, 4, 4), (1000, 64, 128), ["c", "z", "y", "x"], pixels)
    assert b.dataset == "0/0"


def test_plain_zarr3_arrays(tmp_path):
    write_group(tmp_path / "v3.zarr", {})
    write_zarr3(tmp_path / "v3.zarr" / "raw", VOLUME, (4, 5, 7), {"voxel_size": [40, 4, 4], "offset": [400, 40, 0], "axis_names": ["z", "y", "x"]})
    write_zarr3(tmp_path / "v3.zarr" / "named", VOLUME, (4, 5, 7), dimension_names=["z", "y", "x"])
    check(open_array(tmp_path / "v3.zarr/raw"), Zarr3Array, (40, 4, 4), (400, 40, 0), ["z", "y", "x"], VOLUME, SUB.shift(Coordinate(400, 40, 0)), SUB_SLICES)
    check(open_array(tmp_path / "v3.zarr", "named", voxel_size=(40, 4, 4)), Zarr3Array, (40, 4, 4), (0, 0, 0), ["z", "y", "x"], VOLUME, SUB, SUB_SLICES)


def test_open_array_says_which_package_is_missing(tmp_path, monkeypatch):
    write_group(tmp_path / "v3.zarr", {})
    write_zarr3(tmp_path / "v3.zarr" / "raw", VOLUME, (4, 5, 7))
    monkeypatch.setitem(sys.modules, "tensorstore", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"reading zarr v3 \(OME-Zarr 0.5\) needs the package tensorstore: pip install tensorstore"):
        open_array(tmp_path / "v3.zarr/raw")


def test_open_array_refuses_what_it_cannot_read(tmp_path):
    (tmp_path / "notes.csv").write_text("a,b")
    with pytest.raises(ValueError, match="cannot read .*notes.csv: expected a TIFF"):
        open_array(tmp_path / "notes.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="cannot tell the format of .*empty"):
        open_array(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_array(tmp_path / "missing.zarr/raw")


def test_arrays_pickle_without_their_voxels(tmp_path):
    "A spawned worker gets the path and reopens; a memory map is never copied into the pickle."
    tifffile.imwrite(tmp_path / "stack.tif", VOLUME, photometric="minisblack")
    with h5py.File(tmp_path / "s.h5", "w") as f: f["raw"] = VOLUME
    for a in (open_array(tmp_path / "stack.tif", voxel_size=(40, 4, 4)), open_array(tmp_path / "s.h5/raw", voxel_size=(40, 4, 4))):
        a[SUB]  # opened in this process
        payload = pickle.dumps(a)
        assert len(payload) < VOLUME.nbytes / 4, len(payload)
        np.testing.assert_array_equal(pickle.loads(payload)[SUB], VOLUME[SUB_SLICES])


def test_convert_to_zarr_round_trip(tmp_path):
    data = np.stack([VOLUME, VOLUME + 7])
    tifffile.imwrite(tmp_path / "c.ome.tif", data, ome=True, compression="zlib", photometric="minisblack",
                     metadata={"axes": "CZYX", "PhysicalSizeX": 0.004, "PhysicalSizeY": 0.004, "PhysicalSizeZ": 0.04})
    source = open_array(tmp_path / "c.ome.tif")
    out = convert_to_zarr(source, tmp_path / "out.zarr", "volumes/raw", block_shape=(5, 4, 6), progress=False)
    assert out.data.chunks == (2, 5, 4, 6)
    ds = fp.open_ds(str(tmp_path / "out.zarr" / "volumes" / "raw"))  # funlib sees our geometry
    assert (ds.roi, ds.voxel_size, ds.axis_names) == (source.roi, source.voxel_size, ["c^", "z", "y", "x"])
    np.testing.assert_array_equal(ds[ds.roi], data)
    [(axes, transforms, ome_data)] = ome_images(tmp_path / "out.zarr" / "volumes")  # and ome-zarr-py its NGFF entry
    assert (axes, transforms[0][0]["scale"]) == (["c", "z", "y", "x"], [1.0, 40.0, 4.0, 4.0])
    np.testing.assert_array_equal(ome_data, data)


def test_convert_to_zarr_resumes_without_rewriting(tmp_path):
    source = open_array_h5(tmp_path)
    class Stop(Exception): pass
    def stop_after(k):
        def report(done, total):
            if done >= k: raise Stop(done, total)
        return report
    with pytest.raises(Stop) as stopped:
        convert_to_zarr(source, tmp_path / "out.zarr", "raw", block_shape=(4, 5, 7), progress=stop_after(4))
    assert stopped.value.args == (4, 12), stopped.value.args
    raw = tmp_path / "out.zarr" / "raw"
    chunks = lambda: {p.relative_to(raw).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns) for p in raw.rglob("*")
                      if p.is_file() and not p.name.startswith(".")}
    first = chunks()
    assert sorted(first) == ["0/0/0", "0/0/1", "0/1/0", "0/1/1"], sorted(first)
    reports = []
    out = convert_to_zarr(source, tmp_path / "out.zarr", "raw", block_shape=(4, 5, 7), progress=lambda d, t: reports.append((d, t)))
    assert reports[0] == (4, 12) and reports[-1] == (12, 12) and len(reports) == 9, reports
    assert {k: v for k, v in chunks().items() if k in first} == first  # the first four blocks were not written again
    assert len(chunks()) == 12
    np.testing.assert_array_equal(out[out.roi], VOLUME)
    again = []  # a finished conversion writes nothing
    convert_to_zarr(source, tmp_path / "out.zarr", "raw", block_shape=(4, 5, 7), progress=lambda d, t: again.append(d))
    assert again == [12], again
    convert_to_zarr(source, tmp_path / "out.zarr", "raw", block_shape=(4, 5, 7), overwrite=True, progress=False)
    assert all(chunks()[k] != v for k, v in first.items())  # overwrite starts again


def open_array_h5(tmp_path):
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.create_dataset("raw", data=VOLUME).attrs.update({"resolution": [40, 4, 4], "offset": [400, 40, 0]})
    return open_array(tmp_path / "s.h5/raw")


@pytest.mark.parametrize("path,kind", [("a.tif", "tiff"), ("a.ome.tif", "tiff"), ("s.h5", "hdf5"), ("s.n5", "n5"),
                                       ("v3.zarr", "zarr v3"), ("v2.zarr", "zarr 2"), ("images", "image folder")])
def test_array_format_from_disk(tmp_path, path, kind):
    "The kind comes from what is on disk; zarr 2 in a folder named .n5 (what funlib 0.6 writes for a path 'x.n5/raw') is zarr 2."
    p = tmp_path / path
    if kind == "tiff": tifffile.imwrite(p, VOLUME[0])
    elif kind == "hdf5": h5py.File(p, "w").close()
    elif kind == "n5": zarr.open_group(store=zarr.N5Store(str(p)), mode="w")
    elif kind == "zarr v3": write_group(p, {})
    elif kind == "zarr 2": zarr.open_group(str(p), mode="w")
    else: p.mkdir(); Image.fromarray(VOLUME[0]).save(p / "0.png")
    assert array_format(p) == kind


def test_zarr_2_in_a_folder_named_n5(tmp_path):
    ds = fp.prepare_ds(str(tmp_path / "f.n5" / "raw"), shape=VOLUME.shape, offset=(400, 40, 0), voxel_size=(40, 4, 4),
                       axis_names=["z", "y", "x"], dtype=VOLUME.dtype)
    ds[ds.roi] = VOLUME
    check(open_array(tmp_path / "f.n5" / "raw"), ZarrArray, (40, 4, 4), (400, 40, 0), ["z", "y", "x"], VOLUME)
