"""Issue 29's bad-input study over the whole public surface: arrays and formats, datasets, tasks, models, the trainer,
run_training, predict, segmentation, evaluation, validation, the blockwise functions and every `dacapo-nb` subcommand.

Each case tries one bad input on a fresh copy of a small set of files (a 96 x 100 raw, labels, a tiny model, a
prediction, a segmentation, a synthetic 192^2 dataset and a 2-iteration run) and records on its own:
  - what happened: refused (the exception's type and message, and whether it came from our code or a library's),
    warned (accepted with a warning), accepted, or, for the CLI, the exit status and whether stderr holds a traceback;
  - whether the message names the bad value (the case lists what it must contain: the parameter and/or the value);
  - whether anything in the case's folder changed (files made, removed or rewritten) before the refusal.
A case is "clear and early" when it is refused (or warned about, where a warning is the right answer) with a message
naming what it lists and nothing was written; for the CLI also exit status 2, no traceback and a last line
`dacapo-nb...: error: ...`. "rightly accepted" cases are inputs that are not errors. Everything else goes wrong:
unclear (refused, but the message does not name the value, or a traceback / an internal exception type), late (clear,
but after files were written) or silent (accepted without a word).

Run: PYTHONPATH=$PWD MPLBACKEND=Agg OMP_NUM_THREADS=1 python bench/bad_inputs.py [--only WORD] [--markdown FILE]
"""
import argparse, contextlib, io, os, shutil, signal, sys, tempfile, time, traceback, warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from funlib.geometry import Coordinate, Roi

from dacapo_nb.arrays import LocalArrayIdentifier, NumpyArray, ZarrArray
from dacapo_nb.models import Model, UNet

INTERNAL = {"AssertionError", "ZeroDivisionError", "IndexError", "KeyError", "AttributeError", "UnboundLocalError",
            "NameError", "RecursionError", "OverflowError", "TimeoutError"}
BLOCK = (44, 48)


# ---- the files every case starts from ---------------------------------------------------------------------------------

def _zarr(container, dataset, data, axes=("y", "x"), voxel_size=(1, 1), offset=None, channels=None):
    shape = data.shape[-len(voxel_size):]
    roi = Roi(offset or (0,) * len(voxel_size), Coordinate(shape) * Coordinate(voxel_size))
    arr = ZarrArray.create_from_array_identifier(LocalArrayIdentifier(container, dataset), list(axes), roi, channels,
                                                 Coordinate(voxel_size), data.dtype)
    arr[arr.roi] = data
    return arr

def tiny_model():
    torch.manual_seed(0)
    return Model(UNet((44, 44), fmaps=2, downsample_factors=((2, 2),), eval_shape_increase=(0, 0)), 2, eval_activation=torch.sigmoid)

def build_template(tpl: Path):
    "The files of every case: built once, copied for each."
    from dacapo_nb.datasets import make_synthetic_data
    from dacapo_nb.models import model_for
    from dacapo_nb.tasks import affinities_task
    from dacapo_nb.trainer import GunpowderTrainerConfig
    from dacapo_nb.training import run_training
    import tifffile
    rng = np.random.default_rng(0)
    image = rng.random((96, 100), np.float32)
    labels = (np.arange(96)[:, None] // 24 * 10 + np.arange(100)[None] // 25 + 1).astype(np.uint64)
    _zarr(tpl / "raw.zarr", "raw", image)
    _zarr(tpl / "raw.zarr", "u8", (image * 255).astype(np.uint8))
    _zarr(tpl / "raw.zarr", "u12", (image * 4095).round().astype(np.uint16))
    _zarr(tpl / "raw.zarr", "i32", (image * 4095).round().astype(np.int32))
    _zarr(tpl / "raw.zarr", "i64", (image * 4095).round().astype(np.int64))
    _zarr(tpl / "raw.zarr", "u32", (image * 4095).round().astype(np.uint32))
    _zarr(tpl / "raw.zarr", "small", image[:20, :20])
    bad = _zarr(tpl / "raw.zarr", "badvs", image)  # 2D data whose attributes (from another tool) say a 3-axis voxel size
    bad.data.attrs.update({"voxel_size": [4, 1, 1], "resolution": [4, 1, 1], "offset": [0, 0, 0]})
    _zarr(tpl / "raw.zarr", "raw3d", rng.random((4, 96, 100), np.float32), ("z", "y", "x"), (1, 1, 1))
    _zarr(tpl / "data.zarr", "labels", labels)
    _zarr(tpl / "data.zarr", "flabels", labels.astype(np.float32))
    _zarr(tpl / "data.zarr", "labels_other", labels[:50, :50])
    _zarr(tpl / "data.zarr", "labels_half_out", labels, offset=(48, 0))
    _zarr(tpl / "data.zarr", "labels_far", labels, offset=(1000, 1000))
    _zarr(tpl / "data.zarr", "labels_vs2", labels[:48, :50], voxel_size=(2, 2))
    _zarr(tpl / "data.zarr", "labels3d", np.ones((4, 96, 100), np.uint64), ("z", "y", "x"), (1, 1, 1))
    model = tiny_model()
    torch.save(model, tpl / "model.pt")
    pred = np.stack([image, image.T[:96, :96].repeat(2, 1)[:, :100]]).astype(np.float32)
    _zarr(tpl / "o.zarr", "pred", pred, ("c", "y", "x"), channels=2)
    _zarr(tpl / "o.zarr", "pred3", np.concatenate([pred, pred[:1]]), ("c", "y", "x"), channels=3)
    _zarr(tpl / "o.zarr", "seg", labels)
    _zarr(tpl / "o.zarr", "own", np.full((96, 100), 7, np.float32))
    _zarr(tpl / "o.zarr", "own_small", np.full((10, 20), 7, np.uint8), voxel_size=(2, 2))
    tifffile.imwrite(tpl / "stack.tif", (rng.random((5, 32, 32)) * 255).astype(np.uint8))
    (tpl / "file.txt").write_text("not an array\n")
    (tpl / "bad.tif").write_text("x")
    __import__("h5py").File(tpl / "a.h5", "w").close()
    (tpl / "empty").mkdir()
    data = make_synthetic_data(tpl / "syn.zarr", dims=2, shape=(192, 192), seed=1)
    for name, dtype in (("u12", np.uint16), ("i32", np.int32)):  # 12-bit data in wide integers, beside the synthetic raw
        _zarr(tpl / "syn.zarr", name, (np.asarray(data.raw[data.raw.roi]) * 4095).astype(dtype), voxel_size=(8, 8))
    task = affinities_task(2)
    torch.manual_seed(0)
    for _ in run_training(tpl / "run", model_for(task, 2), task, [data], GunpowderTrainerConfig(batch_size=1, num_data_fetchers=0),
                          iterations=2, checkpoint_interval=1): pass


class Files:
    "A case's copy of the template, with the arrays and objects cases use opened on demand."
    def __init__(self, d: Path): self.d = d
    def arr(self, path, dataset): return ZarrArray.open_from_array_identifier(LocalArrayIdentifier(self.d / path, dataset))
    def __getattr__(self, name):
        d = self.d
        from dacapo_nb.tasks import affinities_task
        value = {
            "raw": lambda: self.arr("raw.zarr", "raw"), "u8": lambda: self.arr("raw.zarr", "u8"),
            "u12": lambda: self.arr("raw.zarr", "u12"), "i32": lambda: self.arr("raw.zarr", "i32"),
            "i64": lambda: self.arr("raw.zarr", "i64"), "u32": lambda: self.arr("raw.zarr", "u32"),
            "small": lambda: self.arr("raw.zarr", "small"), "raw3d": lambda: self.arr("raw.zarr", "raw3d"),
            "labels": lambda: self.arr("data.zarr", "labels"), "pred": lambda: self.arr("o.zarr", "pred"),
            "pred3": lambda: self.arr("o.zarr", "pred3"), "seg": lambda: self.arr("o.zarr", "seg"),
            "own": lambda: self.arr("o.zarr", "own"),
            "model": tiny_model, "model_pt": lambda: d / "model.pt", "out": lambda: d / "out.zarr",
            "file": lambda: d / "file.txt", "run": lambda: d / "run", "tif": lambda: d / "stack.tif",
            "task": lambda: affinities_task(2),
            "syn": lambda: self._syn(), "tmodel": lambda: self._tmodel(), "cfg": lambda: self._cfg(),
        }[name]()
        setattr(self, name, value)
        return value
    def _syn(self):
        from dacapo_nb.datasets import Dataset
        return Dataset("syn", self.arr("syn.zarr", "raw"), self.arr("syn.zarr", "gt"))
    def _tmodel(self):
        from dacapo_nb.models import model_for
        torch.manual_seed(0)
        return model_for(self.task, 2)
    def _cfg(self):
        from dacapo_nb.trainer import GunpowderTrainerConfig
        return GunpowderTrainerConfig(batch_size=1, num_data_fetchers=0)
    def ds(self, raw, gt="labels", **kw):
        "A Dataset of the case's arrays by name."
        from dacapo_nb.datasets import Dataset
        return Dataset("d", getattr(self, raw) if isinstance(raw, str) else raw,
                       (self.arr("data.zarr", gt) if isinstance(gt, str) else gt), **kw)
    def npa(self, data, vs=(1, 1), offset=(0, 0)):
        return NumpyArray.from_np_array(data, Roi(offset, Coordinate(data.shape[-2:]) * Coordinate(vs)), vs, ["y", "x"])
    def train(self, datasets=None, model=None, task=None, config=None, iterations=2, run="newrun", **kw):
        from dacapo_nb.training import run_training
        for _ in run_training(self.d / run, model or self.tmodel, task or self.task, datasets or [self.syn], config or self.cfg,
                              iterations, **kw): pass
    def check(self, dataset):
        from dacapo_nb.datasets import check_dataset_values
        check_dataset_values(dataset)


# ---- the cases -------------------------------------------------------------------------------------------------------

@dataclass
class Case:
    area: str
    what: str
    call: Callable  # f(files) for the library; a list of argument strings (with {d} for the case folder) for the CLI
    names: tuple = ()  # what the message must contain ("a|b": either)
    ok: bool = False  # not an error: accepting it is right
    warn: bool = False  # a warning naming `names` is the right answer
    result: dict = field(default_factory=dict)

CASES: list = []
def C(area, what, call, *names, ok=False, warn=False): CASES.append(Case(area, what, call, names, ok, warn))
def CLI(what, argv, *names, ok=False): CASES.append(Case("cli " + (argv[0] if argv else ""), what, argv, names, ok))

def _imp(module, name): return getattr(__import__(f"dacapo_nb.{module}", fromlist=[name]), name)
open_array = lambda *a, **k: _imp("formats", "open_array")(*a, **k)
convert = lambda *a, **k: _imp("formats", "convert_to_zarr")(*a, **k)
create = lambda f, ds="x", axes=("y", "x"), roi=Roi((0, 0), (8, 8)), ch=None, vs=(1, 1), dtype=np.uint8, **k: \
    ZarrArray.create_from_array_identifier(LocalArrayIdentifier(f.out, ds), list(axes), roi, ch, Coordinate(vs), dtype, **k)

# arrays and formats
C("arrays", "open_array of a path that does not exist", lambda f: open_array(f.d / "nope.zarr/raw"), "nope.zarr")
C("arrays", "open_array of a container without the dataset", lambda f: open_array(f.d / "raw.zarr", "nope"), "nope")
C("arrays", "open_array of a plain text file", lambda f: open_array(f.file), "file.txt")
C("arrays", "open_array of an empty folder", lambda f: open_array(f.d / "empty"), "empty")
C("arrays", "open_array(voxel_size=(0, 1, 1)) on a TIFF", lambda f: open_array(f.tif, voxel_size=(0, 1, 1)), "voxel_size|voxel size", "(0, 1, 1)")
C("arrays", "open_array(voxel_size=(1, 1)) (2 values) on a 3D TIFF", lambda f: open_array(f.tif, voxel_size=(1, 1)), "voxel_size|voxel size", "(1, 1)")
C("arrays", "open_array(voxel_size=(-4, 4, 4)) on a TIFF", lambda f: open_array(f.tif, voxel_size=(-4, 4, 4)), "voxel_size|voxel size", "-4")
C("arrays", "open_array(axes=['y', 'x']) on a 3D TIFF", lambda f: open_array(f.tif, axes=["y", "x"]), "axes", "'y', 'x'")
C("arrays", "open_array(axes=['z', 'z', 'x']) on a TIFF", lambda f: open_array(f.tif, axes=["z", "z", "x"]), "axes", "'z', 'z', 'x'|z")
C("arrays", "open_array(offset=(1, 2)) on a 3D TIFF", lambda f: open_array(f.tif, offset=(1, 2)), "offset", "(1, 2)")
C("arrays", "open_array(dataset='raw') on a TIFF", lambda f: open_array(f.tif, "raw"), "stack.tif", "raw")
C("arrays", "open_array of a zarr dataset with another voxel_size than stored", lambda f: open_array(f.d / "raw.zarr/raw", voxel_size=(4, 4)), "(4, 4)", "(1, 1)")
C("arrays", "TiffArray of a missing file", lambda f: _imp("formats", "TiffArray")(f.d / "nope.tif"), "nope.tif")
C("arrays", "TiffArray of a text file named .tif", lambda f: _imp("formats", "TiffArray")(f.d / "bad.tif"), "bad.tif")
C("arrays", "Hdf5Array of a missing dataset", lambda f: _imp("formats", "Hdf5Array")(f.d / "a.h5", "raw"), "raw")
C("arrays", "open_array of a 2D zarr dataset whose voxel_size attribute has 3 values", lambda f: open_array(f.d / "raw.zarr/badvs"), "voxel_size|voxel size", "badvs")
C("arrays", "ZarrArray.open_from_array_identifier of a missing dataset", lambda f: f.arr("raw.zarr", "nope"), "nope")
C("arrays", "ZarrArray.create_from_array_identifier(num_channels=0)", lambda f: create(f, axes=("c", "y", "x"), ch=0), "num_channels", "0")
C("arrays", "create_from_array_identifier(num_channels=-2)", lambda f: create(f, axes=("c", "y", "x"), ch=-2), "num_channels", "-2")
C("arrays", "create_from_array_identifier, voxel_size of 3 values for a 2D ROI", lambda f: create(f, vs=(1, 1, 1)), "voxel_size|(1, 1, 1)")
C("arrays", "create_from_array_identifier, voxel_size 0", lambda f: create(f, vs=(0, 1)), "voxel_size|voxel size", "(0, 1)")
C("arrays", "create_from_array_identifier, ROI off the voxel grid", lambda f: create(f, roi=Roi((0, 0), (9, 8)), vs=(2, 2)), "(9, 8)|[0:9")
C("arrays", "create_from_array_identifier, axes ['z', 'y', 'x'] for a 2D ROI", lambda f: create(f, axes=("z", "y", "x")), "axes|'z'")
C("arrays", "create_from_array_identifier, channels without a 'c' axis", lambda f: create(f, ch=3), ok=True)  # documented: the channel axis is put first
C("arrays", "create_from_array_identifier, dtype 'banana'", lambda f: create(f, dtype="banana"), "banana")
C("arrays", "create_from_array_identifier into an existing dataset of another shape", lambda f: create(f, ds="own", roi=Roi((0, 0), (8, 8))) if False else
  ZarrArray.create_from_array_identifier(LocalArrayIdentifier(f.d / "o.zarr", "own"), ["y", "x"], Roi((0, 0), (8, 8)), None, Coordinate(1, 1), np.float32),
  "own", "(8, 8)|[0:8")
C("arrays", "create_from_array_identifier, container path is a file", lambda f: ZarrArray.create_from_array_identifier(
  LocalArrayIdentifier(f.file, "x"), ["y", "x"], Roi((0, 0), (8, 8)), None, Coordinate(1, 1), np.uint8), "file.txt")
C("arrays", "NumpyArray.from_np_array: ROI of other shape than the data", lambda f: NumpyArray.from_np_array(np.zeros((8, 8)), Roi((0, 0), (16, 8)), (1, 1), ["y", "x"]), "(8, 8)|(16, 8)")
C("arrays", "NumpyArray.from_np_array: axes of 3 names for 2D data", lambda f: NumpyArray.from_np_array(np.zeros((8, 8)), Roi((0, 0), (8, 8)), (1, 1), ["z", "y", "x"]), "axes|'z'")
C("formats", "convert_to_zarr of a numpy array (not an Array)", lambda f: convert(np.zeros((8, 8)), f.out, "x"), "ndarray")
C("formats", "convert_to_zarr into an existing dataset without overwrite", lambda f: convert(open_array(f.tif), f.d / "o.zarr", "own"), "own", "overwrite")
C("formats", "convert_to_zarr(block_shape=(0, 8, 8))", lambda f: convert(open_array(f.tif), f.out, "x", block_shape=(0, 8, 8)), "block_shape", "0")
C("formats", "convert_to_zarr(block_shape=(8, 8)) for 3D", lambda f: convert(open_array(f.tif), f.out, "x", block_shape=(8, 8)), "block_shape", "(8, 8)")
C("formats", "convert_to_zarr(progress='yes')", lambda f: convert(open_array(f.tif), f.out, "x", progress="yes"), "progress", "yes")
C("formats", "convert_to_zarr, container path is a file", lambda f: convert(open_array(f.tif), f.file, "x"), "file.txt")
C("formats", "convert_to_zarr(dataset='')", lambda f: convert(open_array(f.tif), f.out, ""), "dataset")

# datasets
C("datasets", "Dataset(raw=numpy array)", lambda f: _imp("datasets", "Dataset")("d", np.zeros((8, 8))), "raw", "ndarray")
C("datasets", "Dataset: raw 2D, gt 3D", lambda f: f.ds("raw", "labels3d"), "2", "3")
C("datasets", "Dataset: gt at voxel size (3, 3) under raw at (1, 1)", lambda f: f.ds("raw", f.npa(np.ones((32, 33), np.uint64), vs=(3, 3))), "(1, 1)|(3, 3)", ok=True)
C("datasets", "Dataset: gt ROI that does not meet raw's", lambda f: f.ds("raw", "labels_far"), "[1000:1096")
C("datasets", "Dataset: gt ROI half beyond raw's", lambda f: f.ds("raw", "labels_half_out"), "50.0%", "[48:144", warn=True)
C("datasets", "Dataset: float labels", lambda f: f.ds("raw", "flabels"), "float32")
C("datasets", "Dataset: negative labels (check before training)", lambda f: f.check(f.ds("raw", f.npa(np.full((96, 100), -1, np.int32)))), "-1", "ignore_label")
C("datasets", "Dataset: boolean raw", lambda f: f.ds(f.npa(np.ones((96, 100), bool)), None), "bool")
C("datasets", "Dataset: raw_range=(1, 1)", lambda f: f.ds("raw", raw_range=(1, 1)), "raw_range", "(1, 1)")
C("datasets", "Dataset: raw_range=(255, 0) (reversed)", lambda f: f.ds("u8", raw_range=(255, 0)), "raw_range", "(255, 0)")
C("datasets", "Dataset: raw_range='0-255'", lambda f: f.ds("u8", raw_range="0-255"), "raw_range", "0-255")
C("datasets", "Dataset: raw_range=(0, inf)", lambda f: f.ds("u8", raw_range=(0, float("inf"))), "raw_range", "inf")
C("datasets", "Dataset: weight=-1", lambda f: f.ds("raw", weight=-1), "weight", "-1")
C("datasets", "Dataset: weight=0", lambda f: f.ds("raw", weight=0), "weight", "0")
C("datasets", "Dataset: weight='1'", lambda f: f.ds("raw", weight="1"), "weight", "'1'")
C("datasets", "Dataset: sample_points of 3 columns for 2D", lambda f: f.ds("raw", sample_points=np.zeros((4, 3))), "sample_points", "3")
C("datasets", "Dataset: sample_points outside the gt ROI", lambda f: f.ds("raw", sample_points=np.array([[5000, 5000]])), "sample point", "5000")
C("datasets", "Dataset: mask of another ROI than gt", lambda f: f.ds("raw", mask=f.arr("data.zarr", "labels_other")), ok=True)  # labels outside the mask are left out: allowed
C("datasets", "Dataset: ignore_label=0.5", lambda f: f.ds("raw", ignore_label=0.5), "ignore_label", "0.5")
C("datasets", "Dataset: uint16 raw using 12 bits, no raw_range", lambda f: f.check(f.ds("u12")), "uint16", "raw_range")
C("datasets", "Dataset: int32 raw using 12 bits, no raw_range", lambda f: f.check(f.ds("i32")), "int32", "raw_range")
C("datasets", "Dataset: int64 raw using 12 bits, no raw_range", lambda f: f.check(f.ds("i64")), "int64", "raw_range")
C("datasets", "Dataset: uint32 raw using 12 bits, no raw_range", lambda f: f.check(f.ds("u32")), "uint32", "raw_range")
C("datasets", "Dataset: uint16 raw using 12 bits with raw_range=(0, 4095)", lambda f: f.check(f.ds("u12", raw_range=(0, 4095))), ok=True)
C("datasets", "Dataset: float raw in [0, 255]", lambda f: f.check(f.ds(f.npa(np.full((96, 100), 200, np.float32)))), "raw_range")
C("datasets", "Dataset: raw with inf", lambda f: f.check(f.ds(f.npa(np.full((96, 100), np.inf, np.float32)))), "non-finite")
C("datasets", "Dataset: raw with NaN", lambda f: f.check(f.ds(f.npa(np.where(np.eye(96, 100) > 0, np.nan, 0.5).astype(np.float32)))), "non-finite|nan|NaN")
C("datasets", "Dataset: labels all background", lambda f: f.check(f.ds("raw", f.npa(np.zeros((96, 100), np.uint64)))), "background", warn=True)
C("datasets", "make_synthetic_data(dims=4)", lambda f: _imp("datasets", "make_synthetic_data")(f.out, dims=4), "dims", "4")
C("datasets", "make_synthetic_data(shape=(0, 64))", lambda f: _imp("datasets", "make_synthetic_data")(f.out, dims=2, shape=(0, 64)), "shape", "(0, 64)")
C("datasets", "make_synthetic_data(shape=(64, 64, 64)) with dims=2", lambda f: _imp("datasets", "make_synthetic_data")(f.out, dims=2, shape=(64, 64, 64)), "shape", "(64, 64, 64)")
C("datasets", "make_synthetic_data(voxel_size=(0, 8))", lambda f: _imp("datasets", "make_synthetic_data")(f.out, dims=2, shape=(64, 64), voxel_size=(0, 8)), "voxel_size", "(0, 8)")
C("datasets", "make_synthetic_data(noise=-1)", lambda f: _imp("datasets", "make_synthetic_data")(f.out, dims=2, shape=(64, 64), noise=-1), "noise", "-1")
C("datasets", "make_synthetic_data(cell_size=0)", lambda f: _imp("datasets", "make_synthetic_data")(f.out, dims=2, shape=(64, 64), cell_size=0), "cell_size", "0")
C("datasets", "make_synthetic_data(seed=-1)", lambda f: _imp("datasets", "make_synthetic_data")(f.out, dims=2, shape=(64, 64), seed=-1), "seed", "-1")
C("datasets", "make_synthetic_data into a path that is a file", lambda f: _imp("datasets", "make_synthetic_data")(f.file, dims=2, shape=(64, 64)), "file.txt")

# tasks and predictors
task = lambda name, *a, **k: _imp("tasks", name)(*a, **k)
C("tasks", "affinities_task(4)", lambda f: task("affinities_task", 4), "4")
C("tasks", "affinities_task(0)", lambda f: task("affinities_task", 0), "0")
C("tasks", "affinities_task(2, neighborhood=[(1, 0, 0)])", lambda f: task("affinities_task", 2, neighborhood=[(1, 0, 0)]), "(1, 0, 0)")
C("tasks", "affinities_task(2, neighborhood=[(0, 0)])", lambda f: task("affinities_task", 2, neighborhood=[(0, 0)]), "(0, 0)")
C("tasks", "affinities_task(2, neighborhood=[])", lambda f: task("affinities_task", 2, neighborhood=[]), "neighborhood")
C("tasks", "affinities_task(2, lsds_to_affs_weight_ratio=-1)", lambda f: task("affinities_task", 2, lsds=True, lsds_to_affs_weight_ratio=-1), "lsds_to_affs_weight_ratio", "-1")
C("tasks", "AffinitiesPredictor(affs_weight_clipmin=0.9, affs_weight_clipmax=0.1)", lambda f: task("AffinitiesPredictor", [(1, 0), (0, 1)], affs_weight_clipmin=0.9, affs_weight_clipmax=0.1), "0.9", "0.1")
C("tasks", "affinities task with an offset (0, 500) larger than the training window", lambda f: f.train(task=task("affinities_task", 2, neighborhood=[(1, 0), (0, 500)]),
  model=_imp("models", "model_for")(task("affinities_task", 2, neighborhood=[(1, 0), (0, 500)]), 2)), "500")
C("tasks", "distance_task([])", lambda f: task("distance_task", []), "channels")
C("tasks", "distance_task(['a'], scale_factor=0)", lambda f: task("distance_task", ["a"], scale_factor=0), "scale_factor", "0")
C("tasks", "distance_task(['a', 'a'])", lambda f: task("distance_task", ["a", "a"]), "'a'")
C("tasks", "one_hot_task([])", lambda f: task("one_hot_task", []), "classes")
C("tasks", "one_hot_task(['a'])", lambda f: task("one_hot_task", ["a"]), "classes|'a'")
C("tasks", "one_hot_task('abc') (a string)", lambda f: task("one_hot_task", "abc"), "abc")
C("tasks", "DistancePredictor(channels=['a'], clip_distance=-1)", lambda f: task("DistancePredictor", ["a"], clip_distance=-1), "clip_distance", "-1")
C("tasks", "distances task of 2 classes on instance labels", lambda f: f.train(task=task("distance_task", ["a", "b"]),
  model=_imp("models", "model_for")(task("distance_task", ["a", "b"]), 2)), "labels 0..", "'a', 'b'")

# models
model_for = lambda *a, **k: _imp("models", "model_for")(*a, **k)
unet = lambda *a, **k: _imp("models", "UNet")(*a, **k)
C("models", "model_for(task, dims=4)", lambda f: model_for(f.task, 4), "dims|4")
C("models", "model_for(2D task, dims=3)", lambda f: model_for(f.task, 3), "3")
C("models", "model_for(task, 2, input_shape=(10, 10)) (too small for the U-Net)", lambda f: model_for(f.task, 2, input_shape=(10, 10)), "(10, 10)")
C("models", "model_for(task, 2, input_shape=(133, 133)) (not a valid U-Net shape)", lambda f: model_for(f.task, 2, input_shape=(133, 133)), "(133, 133)")
C("models", "model_for(task, 2, input_shape=(132, 132, 132))", lambda f: model_for(f.task, 2, input_shape=(132, 132, 132)), "(132, 132, 132)")
C("models", "model_for('affinities', 2) (a string task)", lambda f: model_for("affinities", 2), "affinities|str")
C("models", "UNet(fmaps=0)", lambda f: unet((44, 44), fmaps=0, downsample_factors=((2, 2),)), "fmaps", "0")
C("models", "UNet(downsample_factors=((3, 3),)) on (44, 44)", lambda f: unet((44, 44), downsample_factors=((3, 3),)), "(44, 44)|(3, 3)")
C("models", "UNet(kernel_size=0)", lambda f: unet((44, 44), kernel_size=0, downsample_factors=((2, 2),)), "kernel_size", "0")
C("models", "UNet(init='banana')", lambda f: unet((44, 44), init="banana", downsample_factors=((2, 2),)), "init", "banana")
C("models", "UNet(num_convs=0)", lambda f: unet((44, 44), num_convs=0, downsample_factors=((2, 2),)), "num_convs", "0")
C("models", "Model(UNet, num_out_channels=0)", lambda f: Model(unet((44, 44), fmaps=2, downsample_factors=((2, 2),)), 0), "num_out_channels", "0")
C("models", "a 3D model on 2D raw (predict)", lambda f: _imp("inference", "predict")(model_for(f.task, 3) if False else model_for(task("affinities_task", 3), 3), f.raw, f.out, progress=False), "3", "2")
C("models", "the model on raw smaller than its input (predict)", lambda f: _imp("inference", "predict")(f.model, f.small, f.out, progress=False), ok=True)  # zero-padded context, as at any edge

# trainer config and trainer
cfg = lambda **k: _imp("trainer", "GunpowderTrainerConfig")(**k)
for k, v, tokens in (("learning_rate", "1e-3", ("learning_rate", "1e-3")), ("learning_rate", -1.0, ("learning_rate", "-1")),
                     ("learning_rate", float("nan"), ("learning_rate", "nan")), ("batch_size", 0, ("batch_size", "0")),
                     ("batch_size", 2.0, ("batch_size", "2.0")), ("num_data_fetchers", -1, ("num_data_fetchers", "-1")),
                     ("data_fetcher_niceness", 50, ("data_fetcher_niceness", "50")), ("snapshot_interval", 0, ("snapshot_interval", "0")),
                     ("min_masked", 2.0, ("min_masked", "2.0")), ("max_sampling_attempts", 0, ("max_sampling_attempts", "0")),
                     ("warmup_iterations", -1, ("warmup_iterations", "-1")), ("seed", 0.5, ("seed", "0.5")), ("seed", -1, ("seed", "-1")),
                     ("mixed_precision", "yes", ("mixed_precision", "yes")), ("augments", "elastic", ("augments", "elastic")),
                     ("augments", [42], ("augment", "42")), ("mask_integral_downsample_factor", 0, ("mask_integral_downsample_factor", "0")),
                     ("print_profiling", -5, ("print_profiling", "-5"))):
    C("trainer", f"GunpowderTrainerConfig({k}={v!r})", lambda f, k=k, v=v: cfg(**{k: v}), *tokens)
def _build(f, datasets, model=None, task=None):
    t = _imp("trainer", "GunpowderTrainer")(f.cfg)
    t.build_batch_provider(datasets, model or f.tmodel, task or f.task)
    with t: t.next()
C("trainer", "GunpowderTrainer.build_batch_provider([])", lambda f: _build(f, []), "dataset")
C("trainer", "GunpowderTrainer on a dataset without gt", lambda f: _build(f, [f.ds("raw", None)]), "gt")
C("trainer", "GunpowderTrainer: 3D model on 2D data", lambda f: _build(f, [f.syn], model_for(task("affinities_task", 3), 3), task("affinities_task", 3)), "3", "2")
C("trainer", "GunpowderTrainer on raw smaller than the model's input", lambda f: _build(f, [f.ds("small", f.npa(np.ones((20, 20), np.uint64)))]), "(20, 20)|[0:20")
C("trainer", "SimpleAugmentConfig(mirror_only=[0, 2]) on 2D data", lambda f: _build(f, [f.syn]) if False else
  (setattr(f, "cfg", cfg(batch_size=1, num_data_fetchers=0, augments=[_imp("augments", "SimpleAugmentConfig")(mirror_only=[0, 2])])), _build(f, [f.syn])), "mirror_only", "2")
C("trainer", "ElasticAugmentConfig(control_point_spacing=(0, 8))", lambda f: _imp("augments", "ElasticAugmentConfig")(control_point_spacing=(0, 8)), "control_point_spacing", "(0, 8)")
C("trainer", "IntensityAugmentConfig(scale=(1.2, 0.8))", lambda f: _imp("augments", "IntensityAugmentConfig")(scale=(1.2, 0.8)), "scale", "(1.2, 0.8)")
C("trainer", "GammaAugmentConfig(gamma_range=(-1, 2))", lambda f: _imp("augments", "GammaAugmentConfig")(gamma_range=(-1, 2)), "gamma_range", "-1")

# run_training
C("training", "run_training(iterations='10')", lambda f: f.train(iterations="10"), "iterations", "'10'")
C("training", "run_training(iterations=-1)", lambda f: f.train(iterations=-1), "iterations", "-1")
C("training", "run_training(iterations=2.5)", lambda f: f.train(iterations=2.5), "iterations", "2.5")
C("training", "run_training(device='cuda') without a GPU", lambda f: f.train(device="cuda"), "cuda", ok=torch.cuda.is_available())
C("training", "run_training(device='gpu0')", lambda f: f.train(device="gpu0"), "gpu0")
C("training", "run_training(checkpoint_interval=0)", lambda f: f.train(checkpoint_interval=0), "checkpoint_interval", "0")
C("training", "run_training(checkpoint_interval=1.5)", lambda f: f.train(checkpoint_interval=1.5), "checkpoint_interval", "1.5")
C("training", "run_training(validation_interval=0) with validation data", lambda f: f.train(validation_datasets=[f.syn], validation_interval=0), "validation_interval", "0")
C("training", "run_training(validation_interval=-5) with validation data", lambda f: f.train(validation_datasets=[f.syn], validation_interval=-5), "validation_interval", "-5")
C("training", "run_training(validation_interval=1) without validation data", lambda f: f.train(validation_interval=1), "validation_interval|validation_datasets")
C("training", "run_training(validation_criterion='banana')", lambda f: f.train(validation_datasets=[f.syn], validation_interval=1, validation_criterion="banana"), "banana")
C("training", "run_training(validation_sweep=[{'thresold': 0.5}]) (misspelt)", lambda f: f.train(validation_datasets=[f.syn], validation_interval=1, validation_sweep=[{"thresold": 0.5}]), "thresold")
C("training", "run_training(datasets=[])", lambda f: f.train(datasets=[]) if False else
  [_ for _ in _imp("training", "run_training")(f.d / "newrun", f.tmodel, f.task, [], f.cfg, 2)], "dataset")
C("training", "run_training with a distances model for an affinities task", lambda f: f.train(model=model_for(task("distance_task", ["a"]), 2)), "channel|1", )
C("training", "run_training, run_dir is a file", lambda f: f.train(run="file.txt"), "file.txt", "folder|directory")
C("training", "run_training resuming a run with another task", lambda f: f.train(run="run", task=task("affinities_task", 2, neighborhood=[(1, 0), (0, 1), (3, 0), (0, 3)]),
  model=model_for(task("affinities_task", 2, neighborhood=[(1, 0), (0, 1), (3, 0), (0, 3)]), 2), iterations=4), "run")
C("training", "run_training resuming the same run to more iterations", lambda f: f.train(run="run", iterations=3), ok=True)
C("training", "run_training(init_from=missing path)", lambda f: f.train(init_from=f.d / "nope"), "nope")
C("training", "run_training(freeze='encoder') without init_from", lambda f: f.train(freeze="encoder", freeze_iterations=2), "freeze", "init_from")
C("training", "run_training(freeze_iterations=-1)", lambda f: f.train(init_from=f.run, freeze=["encoder"], freeze_iterations=-1), "freeze_iterations", "-1")
C("training", "run_training(freeze=['banana'])", lambda f: f.train(init_from=f.run, freeze=["banana"], freeze_iterations=2), "banana")
C("training", "run_training on uint16 raw using 12 bits, no raw_range", lambda f: f.train(datasets=[_imp("datasets", "Dataset")("u", f.arr("syn.zarr", "u12"), f.syn.gt)]), "uint16", "raw_range")
C("training", "run_training on int32 raw using 12 bits, no raw_range", lambda f: f.train(datasets=[_imp("datasets", "Dataset")("i", f.arr("syn.zarr", "i32"), f.syn.gt)]), "int32", "raw_range")
C("training", "run_training on uint16 12-bit raw with raw_range=(0, 4095)", lambda f: f.train(datasets=[_imp("datasets", "Dataset")("u", f.arr("syn.zarr", "u12"), f.syn.gt, raw_range=(0, 4095))]), ok=True)
C("training", "run_training with a model that is not a torch module", lambda f: f.train(model="unet"), "unet|str")

# predict (single process)
_or = lambda value, default: default if value is None else value
predict = lambda f, model=None, raw=None, out=None, **k: _imp("inference", "predict")(_or(model, f.model), _or(raw, f.raw), _or(out, f.out), **{"progress": False, "block_shape": BLOCK, **k})
C("predict", "predict into an existing dataset without overwrite", lambda f: predict(f, out=f.d / "o.zarr", dataset="own"), "own", "overwrite")
C("predict", "predict into a container path that is a file", lambda f: predict(f, out=f.file), "file.txt")
C("predict", "predict(output_roi=beyond raw)", lambda f: predict(f, output_roi=Roi((0, 0), (96, 128))), "output_roi", "[0:96, 0:128]")
C("predict", "predict(output_roi=far outside raw)", lambda f: predict(f, output_roi=Roi((5000, 5000), (28, 32))), "output_roi", "5000")
C("predict", "predict(output_roi=(0, 0, 96, 100)) (not a Roi)", lambda f: predict(f, output_roi=(0, 0, 96, 100)), "output_roi", "(0, 0, 96, 100)")
C("predict", "predict(block_shape=(0, 48))", lambda f: predict(f, block_shape=(0, 48)), "block_shape", "(0, 48)")
C("predict", "predict(block_shape=(44,))", lambda f: predict(f, block_shape=(44,)), "block_shape", "(44,)")
C("predict", "predict(block_shape=(10, 10)) (smaller than the model's output)", lambda f: predict(f, block_shape=(10, 10)), "(10, 10)")
C("predict", "predict(num_workers=-1)", lambda f: predict(f, num_workers=-1), "num_workers", "-1")
C("predict", "predict(device='cuda') without a GPU", lambda f: predict(f, device="cuda"), "cuda", ok=torch.cuda.is_available())
C("predict", "predict(device='banana')", lambda f: predict(f, device="banana"), "banana")
C("predict", "predict on uint16 raw using 12 bits, no raw_range", lambda f: predict(f, raw=f.u12), "uint16", "raw_range")
C("predict", "predict on int32 raw using 12 bits, no raw_range", lambda f: predict(f, raw=f.i32), "int32", "raw_range")
C("predict", "predict on uint16 12-bit raw with raw_range=(0, 4095)", lambda f: predict(f, raw=f.u12, raw_range=(0, 4095)), ok=True)
C("predict", "predict(raw_range=(1, 1))", lambda f: predict(f, raw_range=(1, 1)), "raw_range", "(1, 1)")
C("predict", "predict of a numpy array as raw", lambda f: predict(f, raw=np.zeros((96, 100), np.float32)), "raw|ndarray")
C("predict", "predict with a model path that does not exist", lambda f: predict(f, model=f.d / "nope.pt"), "Model", "PosixPath")
C("predict", "predict(progress='yes')", lambda f: predict(f, progress="yes"), "progress", "yes")
C("predict", "predict(dataset='')", lambda f: predict(f, dataset=""), "dataset")

# segmentation and evaluation (in memory)
seg = lambda name, *a, **k: _imp("segmentation", name)(*a, **k)
affs = lambda f: np.asarray(f.pred[f.pred.roi])
C("segment", "affinities_to_segmentation: 2 channels, neighborhood of 3 offsets", lambda f: seg("affinities_to_segmentation", affs(f), neighborhood=[(1, 0), (0, 1), (3, 0)]), "3", "2")
C("segment", "affinities_to_segmentation(threshold=2)", lambda f: seg("affinities_to_segmentation", affs(f), threshold=2), "threshold", "2")
C("segment", "affinities_to_segmentation(threshold='0.5')", lambda f: seg("affinities_to_segmentation", affs(f), threshold="0.5"), "threshold", "0.5")
C("segment", "affinities_to_segmentation(min_size=-1)", lambda f: seg("affinities_to_segmentation", affs(f), min_size=-1), "min_size", "-1")
C("segment", "affinities_to_segmentation(seed_threshold=0.2 < threshold=0.5)", lambda f: seg("affinities_to_segmentation", affs(f), seed_threshold=0.2), "seed_threshold", "0.2")
C("segment", "affinities_to_segmentation of a 1D array", lambda f: seg("affinities_to_segmentation", np.zeros(10, np.float32)), "(10,)|1")
C("segment", "affinities_to_segmentation with NaN", lambda f: seg("affinities_to_segmentation", np.full((2, 8, 8), np.nan, np.float32)), "NaN|nan|non-finite")
C("segment", "distances_to_segmentation(channel=5) of 2 channels", lambda f: seg("distances_to_segmentation", affs(f), channel=5), "channel", "5")
C("segment", "mutex_watershed: neighborhood of 3 offsets for 2 channels", lambda f: seg("mutex_watershed", affs(f), neighborhood=[(1, 0), (0, 1), (3, 0)]), "3", "2")
C("segment", "agglomerate(threshold=-0.5)", lambda f: seg("agglomerate", affs(f), threshold=-0.5), "threshold", "-0.5")
C("segment", "semantic_segmentation(threshold='x')", lambda f: seg("semantic_segmentation", affs(f), threshold="x"), "threshold", "x")
ev = lambda *a, **k: _imp("evaluation", "evaluate")(*a, **k)
lab = lambda f: np.asarray(f.labels[f.labels.roi])
C("evaluate", "evaluate: seg and gt of other shapes", lambda f: ev(lab(f), lab(f)[:50]), "(96, 100)", "(50, 100)")
C("evaluate", "evaluate: float segmentation", lambda f: ev(lab(f).astype(np.float32) + 0.5, lab(f)), "float")
C("evaluate", "evaluate: negative labels", lambda f: ev(lab(f).astype(np.int64) - 5, lab(f)), "negative|-", ok=True)
C("evaluate", "evaluate: mask of another shape", lambda f: ev(lab(f), lab(f), mask=np.ones((5, 5), bool)), "mask", "(5, 5)")
C("evaluate", "evaluate(ignore_label='0')", lambda f: ev(lab(f), lab(f), ignore_label="0"), "ignore_label", "'0'")
C("evaluate", "evaluate: empty arrays", lambda f: ev(np.zeros((0, 0), np.uint64), np.zeros((0, 0), np.uint64)), "empty|(0, 0)")

# validation
val = lambda f, dataset=None, **k: _imp("validation", "validate")(f.tmodel, f.task, dataset or f.syn, f.out, **k)
C("validate", "validate on a dataset without gt", lambda f: val(f, f.ds("raw", None)), "gt")
C("validate", "validate(sweep=[])", lambda f: val(f, sweep=[]), "sweep")
C("validate", "validate(sweep=[{'thresold': 0.5}]) (misspelt)", lambda f: val(f, sweep=[{"thresold": 0.5}]), "thresold")
C("validate", "validate(sweep=[{'threshold': 2}])", lambda f: val(f, sweep=[{"threshold": 2}]), "threshold", "2")
C("validate", "validate(min_size=-1)", lambda f: val(f, sweep=[{"threshold": 0.5}], min_size=-1), "min_size", "-1")
C("validate", "validate into a container path that is a file", lambda f: _imp("validation", "validate")(f.tmodel, f.task, f.syn, f.file, sweep=[{"threshold": 0.5}]), "file.txt")
C("validate", "validate on uint16 12-bit raw without raw_range", lambda f: val(f, _imp("datasets", "Dataset")("u", f.arr("syn.zarr", "u12"), f.syn.gt), sweep=[{"threshold": 0.5}]), "uint16", "raw_range")
C("validate", "validate(device='cuda') without a GPU", lambda f: val(f, sweep=[{"threshold": 0.5}], device="cuda"), "cuda", ok=torch.cuda.is_available())
C("validate", "validate of a numpy array as dataset", lambda f: _imp("validation", "validate")(f.tmodel, f.task, np.zeros((8, 8)), f.out), "Dataset|ndarray")

# blockwise
pbw = lambda f, model=None, raw=None, out=None, **k: _imp("blockwise_predict", "predict_blockwise")(_or(model, f.model), _or(raw, f.raw), _or(out, f.out),
                                                                                          **{"progress": False, "block_shape": BLOCK, **k})
sbw = lambda f, pred=None, out=None, **k: _imp("blockwise_segmentation", "segment_blockwise")(_or(pred, f.pred), _or(out, f.out), **{"progress": False, "block_size": (32, 32), **k})
ebw = lambda f, seg=None, gt=None, **k: _imp("blockwise_evaluation", "evaluate_blockwise")(_or(seg, f.seg), _or(gt, f.labels), **{"progress": False, "block_size": (32, 32), **k})
C("blockwise", "predict_blockwise into the user's own dataset (same geometry), no overwrite", lambda f: pbw(f, out=f.d / "o.zarr", dataset="own"), "own", "overwrite")
C("blockwise", "predict_blockwise into the user's own dataset (other shape, dtype, voxel size), no overwrite", lambda f: pbw(f, out=f.d / "o.zarr", dataset="own_small"), "own_small", "overwrite")
C("blockwise", "predict_blockwise(num_workers=0)", lambda f: pbw(f, num_workers=0), "num_workers", "0")
C("blockwise", "predict_blockwise(num_workers=-1)", lambda f: pbw(f, num_workers=-1), "num_workers", "-1")
C("blockwise", "predict_blockwise(num_workers=1.5)", lambda f: pbw(f, num_workers=1.5), "num_workers", "1.5")
C("blockwise", "predict_blockwise(max_restarts=-1)", lambda f: pbw(f, max_restarts=-1), "max_restarts", "-1")
C("blockwise", "predict_blockwise(output_roi=beyond raw)", lambda f: pbw(f, output_roi=Roi((0, 0), (96, 128))), "output_roi", "[0:96, 0:128]")
C("blockwise", "predict_blockwise(output_roi=far outside raw)", lambda f: pbw(f, output_roi=Roi((5000, 5000), (28, 32))), "output_roi", "5000")
C("blockwise", "predict_blockwise(block_shape=(0, 48))", lambda f: pbw(f, block_shape=(0, 48)), "block_shape", "(0, 48)")
C("blockwise", "predict_blockwise(block_shape=(44, 48, 48)) for 2D", lambda f: pbw(f, block_shape=(44, 48, 48)), "block_shape", "(44, 48, 48)")
C("blockwise", "predict_blockwise(block_shape=(10, 10)) (below the model's input)", lambda f: pbw(f, block_shape=(10, 10)), "(10, 10)")
C("blockwise", "predict_blockwise(dataset='/')", lambda f: pbw(f, dataset="/"), "dataset")
C("blockwise", "predict_blockwise into a container path that is a file", lambda f: pbw(f, out=f.file), "file.txt")
C("blockwise", "predict_blockwise on uint16 12-bit raw, no raw_range", lambda f: pbw(f, raw=f.u12), "uint16", "raw_range")
C("blockwise", "predict_blockwise on int32 12-bit raw, no raw_range", lambda f: pbw(f, raw=f.i32), "int32", "raw_range")
C("blockwise", "predict_blockwise(raw_range=(5, 5))", lambda f: pbw(f, raw_range=(5, 5)), "raw_range", "(5, 5)")
C("blockwise", "predict_blockwise of a NumpyArray raw (not zarr)", lambda f: pbw(f, raw=f.npa(np.zeros((96, 100), np.float32))), "NumpyArray|zarr")
C("blockwise", "predict_blockwise with a model path that does not exist", lambda f: pbw(f, model=f.d / "nope.pt"), "nope.pt")
C("blockwise", "predict_blockwise(progress='yes')", lambda f: pbw(f, progress="yes"), "progress", "yes")
C("blockwise", "predict_blockwise(worker_command='')", lambda f: pbw(f, worker_command=""), ok=True)  # an empty prefix: the workers start as without one
C("blockwise", "predict_blockwise(device='cuda') without a GPU", lambda f: pbw(f, device="cuda"), "cuda", ok=torch.cuda.is_available())
C("blockwise", "segment_blockwise into the user's own dataset, no overwrite", lambda f: sbw(f, out=f.d / "o.zarr", dataset="own"), "own", "overwrite")
C("blockwise", "segment_blockwise(kind='banana')", lambda f: sbw(f, kind="banana"), "kind", "banana")
C("blockwise", "segment_blockwise(threshold=2)", lambda f: sbw(f, threshold=2), "threshold", "2")
C("blockwise", "segment_blockwise(seed_threshold=0.2 < threshold 0.5)", lambda f: sbw(f, seed_threshold=0.2), "seed_threshold", "0.2")
C("blockwise", "segment_blockwise(kind='distances', channel=5)", lambda f: sbw(f, kind="distances", channel=5), "channel", "5")
C("blockwise", "segment_blockwise(min_size=-3)", lambda f: sbw(f, min_size=-3), "min_size", "-3")
C("blockwise", "segment_blockwise(block_size=(0, 32))", lambda f: sbw(f, block_size=(0, 32)), "block_size", "(0, 32)")
C("blockwise", "segment_blockwise(block_size=(32, 32, 32)) for 2D", lambda f: sbw(f, block_size=(32, 32, 32)), "block_size", "(32, 32, 32)")
C("blockwise", "segment_blockwise(num_workers=0)", lambda f: sbw(f, num_workers=0), "num_workers", "0")
C("blockwise", "segment_blockwise: 3-channel prediction, default 2D neighbourhood", lambda f: sbw(f, pred=f.pred3), "3", "2")
C("blockwise", "segment_blockwise(neighborhood=[(1, 0), (0, 1), (3, 0)]) for 2 channels", lambda f: sbw(f, neighborhood=[(1, 0), (0, 1), (3, 0)]), "3", "2")
C("blockwise", "segment_blockwise of a segmentation (uint64, no channels) as prediction", lambda f: sbw(f, pred=f.seg), "seg|uint64|channel")
C("blockwise", "segment_blockwise(seed_threshold=0.9, context=(-4, -4))", lambda f: sbw(f, seed_threshold=0.9, context=(-4, -4)), "context", "-4")
C("blockwise", "evaluate_blockwise: seg and gt of other ROIs", lambda f: ebw(f, gt=f.arr("data.zarr", "labels_other")), ok=True)  # documented: over the ROI they share
C("blockwise", "evaluate_blockwise: float seg", lambda f: ebw(f, seg=f.raw), "float32")
C("blockwise", "evaluate_blockwise(num_workers=0)", lambda f: ebw(f, num_workers=0), "num_workers", "0")
C("blockwise", "evaluate_blockwise(block_size=(-32, 32))", lambda f: ebw(f, block_size=(-32, 32)), "block_size", "(-32, 32)")
C("blockwise", "evaluate_blockwise: mask of another ROI", lambda f: ebw(f, mask=f.arr("data.zarr", "labels_other")), ok=True)  # documented: over the ROI all share
C("blockwise", "evaluate_blockwise: gt of another voxel size", lambda f: ebw(f, gt=f.arr("data.zarr", "labels_vs2")), "(2, 2)")

# runs
C("runs", "load_run of a folder that does not exist", lambda f: _imp("runs", "load_run")(f.d / "nope"), "nope")
C("runs", "load_run of a folder that is no run", lambda f: _imp("runs", "load_run")(f.d / "empty"), "empty")
C("runs", "load_run(iteration=999) (no such checkpoint)", lambda f: _imp("runs", "load_run")(f.run, iteration=999), "999")
C("runs", "load_run(iteration='2')", lambda f: _imp("runs", "load_run")(f.run, iteration="2"), "iteration", "'2'")
C("runs", "load_best of a run never validated", lambda f: _imp("runs", "load_best")(f.run), "valid")
C("runs", "compare_runs([]) ", lambda f: _imp("runs", "compare_runs")([], plot=False), "run")
C("runs", "compare_runs(criterion='banana')", lambda f: _imp("runs", "compare_runs")([f.run], criterion="banana", plot=False), "banana")
C("runs", "read_run of a file", lambda f: _imp("runs", "read_run")(f.file), "file.txt")

# the CLI: {d} is the case folder
T = ["--iterations", "2", "--device", "cpu", "--batch-size", "1", "--fetchers", "0"]
TR = ["--raw", "{d}/syn.zarr/raw", "--gt", "{d}/syn.zarr/gt"]
for what, extra, tokens in ((["--iterations", "-1"], [], ("--iterations", "-1")), (["--iterations", "x"], [], ("--iterations", "'x'")),
                            (["--seed", "-2"], [], ("seed", "-2")), (["--learning-rate", "inf"], [], ("learning_rate|--learning-rate", "inf")),
                            (["--device", "gpu0"], [], ("gpu0",)), (["--batch-size", "0"], [], ("batch", "0")),
                            (["--fetchers", "-1"], [], ("fetchers|num_data_fetchers", "-1")), (["--dims", "4"], [], ("--dims", "4")),
                            (["--task", "banana"], [], ("--task", "banana")), (["--raw", "{d}/nope.zarr/raw"], [], ("nope.zarr",)),
                            (["--raw", "{d}/syn.zarr/raw"], [], ("--gt",)), (["--gt", "{d}/syn.zarr/gt"], [], ("--raw|--gt",)),
                            (["--raw-range", "5", "5"], TR, ("raw_range|--raw-range", "5")), (["--voxel-size", "0", "8"], TR, ("voxel", "0")),
                            (["--validation-interval", "0"], [], ("validation", "0")), (["--validation-interval", "1", "--validation-criterion", "banana"], [], ("banana",)),
                            (["--freeze", "encoder"], [], ("--freeze",)), (["--init-from", "{d}/nope"], [], ("nope",)),
                            (["--nproc", "0"], [], ("--nproc|nproc", "0")), (["--checkpoint-interval", "0"], [], ("checkpoint", "0")),
                            (["--snapshot-interval", "0"], [], ("snapshot", "0")), (["--out", "{d}/file.txt"], [], ("file.txt",)),
                            (["--freeze-iterations", "-3"], ["--init-from", "{d}/run", "--freeze", "encoder"], ("freeze", "-3")),
                            (["--val-raw", "{d}/syn.zarr/raw"], TR, ("--val-gt|--validation-interval",)),
                            (["--gt-boundaries"], ["--raw", "{d}/raw.zarr/raw", "--gt", "{d}/data.zarr/flabels"], ("float32",))):
    CLI("train " + " ".join(what + extra).replace("{d}/", ""), ["train", "--out", "{d}/newrun", *T, *extra, *what], *tokens,
        ok=what == ["--gt-boundaries"])  # a float boundary map: its non-zero inside is the objects
CLI("train --raw raw.zarr/u12 (12-bit uint16) --gt data.zarr/labels, no --raw-range",
    ["train", "--out", "{d}/newrun", *T, "--raw", "{d}/raw.zarr/u12", "--gt", "{d}/data.zarr/labels"], "uint16", "--raw-range|raw_range")
CLI("train --device cuda without a GPU", ["train", "--out", "{d}/newrun", *T[:2], "--device", "cuda"], "cuda", ok=torch.cuda.is_available())
P = ["{d}/model.pt", "{d}/raw.zarr/raw"]
for what, argv, *tokens in (("missing model file", ["{d}/nope.pt", "{d}/raw.zarr/raw", "{d}/out.zarr/p"], ("nope.pt",)),
                           ("model file that is text", ["{d}/file.txt", "{d}/raw.zarr/raw", "{d}/out.zarr/p"], ("file.txt",)),
                           ("missing raw", ["{d}/model.pt", "{d}/raw.zarr/nope", "{d}/out.zarr/p"], ("nope",)),
                           ("out without a dataset", [*P, "{d}/out.zarr"], ("out.zarr",)),
                           ("--workers 0", [*P, "{d}/out.zarr/p", "--workers", "0"], ("workers", "0")),
                           ("--workers -1", [*P, "{d}/out.zarr/p", "--workers", "-1"], ("workers", "-1")),
                           ("--block-shape 0 48", [*P, "{d}/out.zarr/p", "--block-shape", "0", "48"], ("block_shape|--block-shape", "(0, 48)")),
                           ("--block-shape 44 (one value for 2D)", [*P, "{d}/out.zarr/p", "--block-shape", "44"], ("block_shape|--block-shape", "44")),
                           ("into the user's own dataset, no --overwrite", [*P, "{d}/o.zarr/own", "--block-shape", "44", "48"], ("own", "overwrite")),
                           ("out container is a file", [*P, "{d}/file.txt/p"], ("file.txt",)),
                           ("--run of a missing folder", ["{d}/raw.zarr/raw", "{d}/out.zarr/p", "--run", "{d}/nope"], ("nope",)),
                           ("--run --iteration 999", ["{d}/raw.zarr/raw", "{d}/out.zarr/p", "--run", "{d}/run", "--iteration", "999"], ("999",)),
                           ("--iteration without --run", [*P, "{d}/out.zarr/p", "--iteration", "2"], ("--iteration", "--run")),
                           ("a model file that --run's weights do not fit", [*P, "{d}/out.zarr/p", "--run", "{d}/run"], ("iteration_00000002.pt", "does not load into the Model")),
                           ("--raw-range 1 1", [*P, "{d}/out.zarr/p", "--raw-range", "1", "1"], ("raw_range|--raw-range", "1")),
                           ("12-bit uint16 raw, no --raw-range", ["{d}/model.pt", "{d}/raw.zarr/u12", "{d}/out.zarr/p"], ("uint16", "raw_range|--raw-range")),
                           ("--device banana", [*P, "{d}/out.zarr/p", "--device", "banana"], ("banana",)),
                           ("--worker-command ''", [*P, "{d}/out.zarr/p", "--worker-command", ""], ("worker",), True)):
    CLI("predict " + what, ["predict", *argv], *tokens[0], ok=bool(tokens[1:]))
CLI("predict --device cuda without a GPU", ["predict", *P, "{d}/out.zarr/p", "--device", "cuda"], "cuda", ok=torch.cuda.is_available())
S = ["{d}/o.zarr/pred", "{d}/out.zarr/s"]
for what, argv, tokens in (("missing prediction", ["{d}/o.zarr/nope", "{d}/out.zarr/s"], ("nope",)),
                           ("--workers 0", [*S, "--workers", "0", "--method", "components"], ("workers", "0")),
                           ("--min-size -1", [*S, "--min-size", "-1"], ("min_size|--min-size", "-1")),
                           ("--threshold 2", [*S, "--threshold", "2"], ("threshold", "2")),
                           ("--seed-threshold 0.1 --threshold 0.5", [*S, "--threshold", "0.5", "--seed-threshold", "0.1", "--method", "components"], ("seed", "0.1")),
                           ("--block-size 0 32", [*S, "--block-size", "0", "32", "--method", "components"], ("block_size|--block-size", "(0, 32)")),
                           ("into the user's own dataset, no --overwrite", ["{d}/o.zarr/pred", "{d}/o.zarr/own", "--method", "components"], ("own", "overwrite")),
                           ("into the user's own dataset in memory (agglomerate), no --overwrite", ["{d}/o.zarr/pred", "{d}/o.zarr/own"], ("own", "overwrite")),
                           ("--run of a missing folder", [*S, "--run", "{d}/nope"], ("nope",)),
                           ("--method mutex --seed-threshold 0.9", [*S, "--method", "mutex", "--seed-threshold", "0.9"], ("mutex", "seed")),
                           ("a segmentation as prediction", ["{d}/o.zarr/seg", "{d}/out.zarr/s"], ("seg|uint64|channel",)),
                           ("--method banana", [*S, "--method", "banana"], ("--method", "banana")),
                           ("out without a dataset", ["{d}/o.zarr/pred", "{d}/out.zarr"], ("out.zarr",))):
    CLI("segment " + what, ["segment", *argv], *tokens)
E = ["{d}/o.zarr/seg", "{d}/data.zarr/labels"]
for what, argv, *tokens in (("missing seg", ["{d}/o.zarr/nope", "{d}/data.zarr/labels"], ("nope",)),
                           ("--block-size 0 32", [*E, "--block-size", "0", "32"], ("block_size|--block-size", "(0, 32)")),
                           ("--workers 0", [*E, "--workers", "0"], ("workers", "0")),
                           ("seg and gt of other ROIs (scored where they overlap)", ["{d}/o.zarr/seg", "{d}/data.zarr/labels_other"], ("[0:50|(50, 50)",), True),
                           ("a float raw as seg", ["{d}/raw.zarr/raw", "{d}/data.zarr/labels"], ("float32",)),
                           ("gt of another voxel size", ["{d}/o.zarr/seg", "{d}/data.zarr/labels_vs2"], ("(2, 2)",))):
    CLI("evaluate " + what, ["evaluate", *argv], *tokens[0], ok=bool(tokens[1:]))
for what, argv, tokens in (("missing input", ["{d}/nope.tif", "{d}/out.zarr/x"], ("nope.tif",)),
                           ("out without a dataset", ["{d}/stack.tif", "{d}/out.zarr"], ("out.zarr",)),
                           ("--voxel-size 0 1 1", ["{d}/stack.tif", "{d}/out.zarr/x", "--voxel-size", "0", "1", "1"], ("voxel", "0")),
                           ("--voxel-size 4 4 (2 values for 3D)", ["{d}/stack.tif", "{d}/out.zarr/x", "--voxel-size", "4", "4"], ("voxel", "(4, 4)|4 4")),
                           ("--axes y x (2 names for 3D)", ["{d}/stack.tif", "{d}/out.zarr/x", "--axes", "y", "x"], ("axes", "y")),
                           ("--offset 1 2 (2 values for 3D)", ["{d}/stack.tif", "{d}/out.zarr/x", "--offset", "1", "2"], ("offset", "1")),
                           ("--block-shape 0 8 8", ["{d}/stack.tif", "{d}/out.zarr/x", "--block-shape", "0", "8", "8"], ("block_shape|--block-shape", "0")),
                           ("into the user's own dataset, no --overwrite", ["{d}/stack.tif", "{d}/o.zarr/own"], ("own", "overwrite")),
                           ("input is a text file", ["{d}/file.txt", "{d}/out.zarr/x"], ("file.txt",)),
                           ("out container is a file", ["{d}/stack.tif", "{d}/file.txt/x"], ("file.txt",))):
    CLI("convert " + what, ["convert", *argv], *tokens)
for what, argv, tokens in (("missing folder", ["{d}/nope"], ("nope",)), ("folder without runs", ["{d}/empty"], ("empty",)),
                           ("a file", ["{d}/file.txt"], ("file.txt",)), ("--criterion banana", ["{d}/run", "--criterion", "banana"], ("banana",))):
    CLI("runs " + what, ["runs", *argv], *tokens)
CLI("(no subcommand)", [], "command|required|train", ok=False)
CLI("banana (unknown subcommand)", ["banana"], "banana")


# ---- running a case --------------------------------------------------------------------------------------------------

def snapshot(d: Path) -> dict:
    out = {}
    for root, dirs, files in os.walk(d):
        for name in dirs: out[os.path.relpath(os.path.join(root, name), d)] = "dir"
        for name in files:
            p = os.path.join(root, name)
            if name.endswith((".pyc", ".lock")): continue  # a lock file (re)written in a folder that exists is no data
            s = os.stat(p); out[os.path.relpath(p, d)] = (s.st_size, s.st_mtime_ns)
    return out

class Hang(Exception): pass
def _alarm(*_): raise Hang("no answer within the time limit")

def _named(message: str, names) -> bool:
    return all(any(alt in message for alt in n.split("|")) for n in names)

def _origin(tb) -> str:
    "The module of the frame that raised: ours or a library's."
    frames = traceback.extract_tb(tb)
    if not frames: return "?"
    path = frames[-1].filename
    if "dacapo_nb" in path: return "dacapo_nb"
    if "site-packages" in path: return path.split("site-packages/")[1].split("/")[0].replace(".py", "")
    return Path(path).name

def run_case(case: Case, tpl: Path, work: Path, timeout: int) -> dict:
    d = work / "case"
    shutil.rmtree(d, ignore_errors=True); shutil.copytree(tpl, d, symlinks=True)
    f = Files(d)
    before = snapshot(d)
    r = {"outcome": None, "type": "", "message": "", "origin": "", "warnings": []}
    err, out, caught = io.StringIO(), io.StringIO(), []
    signal.signal(signal.SIGALRM, _alarm); signal.alarm(timeout)
    start = time.monotonic()
    try:
        with warnings.catch_warnings(record=True) as record, contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            warnings.simplefilter("always")
            caught = record
            if isinstance(case.call, list):
                from dacapo_nb.cli import main
                try: r["exit"] = main([a.replace("{d}", str(d)) for a in case.call])
                except SystemExit as e: r["exit"] = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            else:
                case.call(f)
        r["outcome"] = "accepted"
    except Hang as e:
        r.update(outcome="hangs", type="timeout", message=f"still running after {timeout} s")
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt): raise
        tb = "".join(traceback.format_exception(e))
        r.update(outcome="raised", type=type(e).__name__, message=str(e), origin=_origin(e.__traceback__), tb=tb)
    finally:
        signal.alarm(0)
    r["seconds"] = round(time.monotonic() - start, 1)
    r["warnings"] = [str(w.message) for w in caught]
    after = snapshot(d)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    r["written"] = sorted(changed)
    if isinstance(case.call, list):
        r["stderr"] = err.getvalue()
        lines = [l for l in err.getvalue().splitlines() if l.strip()]
        r["last"] = lines[-1] if lines else ""
        r["traceback"] = "Traceback" in err.getvalue() or r["outcome"] == "raised"
        r["one_line"] = len(lines) == 1
    return r

def judge(case: Case, r: dict) -> str:
    "clear (and early) / late / unclear / silent / rightly accepted / hangs."
    cli = isinstance(case.call, list)
    if r["outcome"] == "hangs": return "hangs"
    if cli:
        if r["outcome"] == "raised" or r["traceback"]: return "unclear"
        if r.get("exit") == 0: return "rightly accepted" if case.ok else "silent"
        if r.get("exit") != 2: return "unclear"
        if case.ok: return "wrongly refused"
        good = _named(r["last"], case.names) and "error:" in r["last"] and r["last"].startswith("dacapo-nb")
        return ("clear" if not r["written"] else "late") if good else "unclear"
    if r["outcome"] == "accepted":
        if case.warn and any(_named(w, case.names) for w in r["warnings"]): return "clear"
        if case.ok: return "rightly accepted"
        named = [w for w in r["warnings"] if _named(w, case.names)]
        return "warned" if named else "silent"
    if case.ok: return "wrongly refused"
    good = _named(r["message"], case.names) and r["type"] not in INTERNAL and "%r" not in r["message"]
    return ("clear" if not r["written"] else "late") if good else "unclear"

def describe(case: Case, r: dict) -> str:
    cli = isinstance(case.call, list)
    short = lambda s, n=160: " ".join(s.split())[:n] + ("..." if len(" ".join(s.split())) > n else "")
    if r["outcome"] == "hangs": return r["message"]
    if cli:
        if r["outcome"] == "raised": return f"traceback: {r['type']}: {short(r['message'])}"
        return f"exit {r.get('exit')}" + ("" if r["one_line"] or r.get("exit") == 0 else f", {len([l for l in r['stderr'].splitlines() if l.strip()])} lines") + \
               (f": {short(r['last'])}" if r["last"] and r.get("exit") != 0 else "")
    if r["outcome"] == "accepted":
        return "accepted" + (f"; warned: {short(r['warnings'][0])}" if r["warnings"] else "")
    return f"{r['type']}" + (f" (from {r['origin']})" if r["origin"] != "dacapo_nb" else "") + f": {short(r['message'])}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run the cases whose area or text holds this word")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--timeout", type=int, default=240, help="seconds per case")
    args = parser.parse_args()
    cases = [c for c in CASES if not args.only or args.only in c.area or args.only in c.what]
    work = Path(tempfile.mkdtemp(prefix="bad_inputs_"))
    build_template(work / "template")
    rows, counts = [], {}
    start = time.monotonic()
    for i, case in enumerate(cases):
        r = run_case(case, work / "template", work, args.timeout)
        verdict = judge(case, r)
        counts[verdict] = counts.get(verdict, 0) + 1
        written = "" if not r["written"] else f" [wrote {len(r['written'])}: {', '.join(r['written'][:3])}]"
        rows.append((case.area, case.what, (describe(case, r) + written).replace(str(work / "case"), "<case>"), verdict))
        print(f"{i + 1:3d} {verdict:16s} {case.area:12s} {case.what} -> {describe(case, r)}{written} ({r['seconds']} s)", file=sys.stderr, flush=True)
    table = ["| area | input | what happens | verdict |", "|---|---|---|---|"]
    table += [f"| {a} | {w} | {h.replace('|', '/')} | {v} |" for a, w, h, v in rows]
    by_area = {}
    for a, _, _, v in rows: by_area.setdefault(a.split()[0] if a.startswith("cli") else a, {}).setdefault(v, 0); by_area[a.split()[0] if a.startswith("cli") else a][v] += 1
    summary = ["| area | cases | clear and early | rightly accepted | other |", "|---|---|---|---|---|"]
    for a, vs in by_area.items():
        other = ", ".join(f"{n} {v}" for v, n in vs.items() if v not in ("clear", "rightly accepted"))
        summary.append(f"| {a} | {sum(vs.values())} | {vs.get('clear', 0)} | {vs.get('rightly accepted', 0)} | {other} |")
    total = f"{len(rows)} bad inputs: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    text = "\n".join(summary + ["", total, "", *table]) + "\n"
    print(text)
    print(f"({time.monotonic() - start:.0f} s)")
    if args.markdown: args.markdown.write_text(text)
    shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
