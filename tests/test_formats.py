"""Formats: what we write opens in other tools and what they write opens here (issue 12).

The oracles are independent implementations: ome-zarr-py (OME-NGFF 0.4 on zarr 2), funlib.persistence 0.6 and
gunpowder 1.4; zarr's own group walk stands for napari and the other browsers.
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
    c = tmp_path / "v3.zarr"
    (c / "image" / "s0").mkdir(parents=True)
    (c / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {}}))
    (c / "image" / "zarr.json").write_text(json.dumps(
        {"zarr_format": 3, "node_type": "group", "attributes": {"ome": {"version": "0.5", "multiscales": []}}}))
    for dataset in ("image", "image/s0"):
        with pytest.raises(ValueError, match="zarr v3 .* OME-NGFF 0.5: dacapo_nb runs on zarr 2 .* fmt=FormatV04"):
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
