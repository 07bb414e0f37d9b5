"""The dashboard and the viewer in a real Jupyter kernel (nbclient): the panel is displayed as a widget view, the
buttons work while training runs in the kernel's background thread, and the widget state that reaches the frontend
(comm messages sent from the refresher thread) shows the progress, the curves and the snapshot."""
import base64, json
from pathlib import Path

import nbformat
from nbclient import NotebookClient

SETUP = '''
import json, multiprocessing, time, torch
from pathlib import Path
from dacapo_nb.datasets import make_synthetic_data
from dacapo_nb.models import model_for
from dacapo_nb.tasks import affinities_task
from dacapo_nb.trainer import GunpowderTrainerConfig
from dacapo_nb.training import latest_checkpoint
from dacapo_nb.widgets import TrainingDashboard, SnapshotViewer, train_in_notebook, active_dashboard
work = Path({work!r})
data = make_synthetic_data(work / "data.zarr", dims=2, shape=(256, 256), seed=0)
task = affinities_task(2)
def fresh_model():
    torch.manual_seed(0)
    return model_for(task, 2)
config = GunpowderTrainerConfig(batch_size=1, num_data_fetchers=1, snapshot_interval=2, seed=0)
def until(condition, timeout=120):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)
'''

# The cell returns at once: training goes on in the background while the next cells run.
START = '''
t0 = time.time()
dash = train_in_notebook(work / "run", fresh_model(), task, [data], config, iterations=400, device="cpu", refresh_interval=0.2)
assert time.time() - t0 < 5 and dash.running
assert dash.validation.widget not in dash.widget.children   # no validation asked for: no validation panel
'''

CONTROL = '''
until(lambda: dash.done >= 3 and dash.viewer.iterations)
dash.pause_button.click()
until(lambda: dash.status == "paused")
paused_at = dash.done
time.sleep(0.5)
assert dash.done == paused_at
dash.pause_button.click()
until(lambda: dash.done >= paused_at + 2)
dash.stop_button.click()
assert dash.wait(120) == "stopped"
assert latest_checkpoint(work / "run" / "checkpoints").name == f"iteration_{dash.done:08d}.pt"
assert dash.trainer._build is None and active_dashboard() is None
assert not multiprocessing.active_children(), multiprocessing.active_children()   # the data fetcher is gone
dash.refresh()
print(json.dumps({"done": dash.done, "status": dash.status, "label": dash.progress_label.value,
                  "progress_id": dash.progress.model_id, "curves_id": dash.curves.model_id,
                  "snapshot_id": dash.viewer.image.model_id, "titles": [ax.get_title() for ax in dash.viewer.figure.axes]}))
'''

ERROR = '''
broken = fresh_model()
def fails(x): raise ValueError("broken forward")
broken.forward = fails
bad = train_in_notebook(work / "bad", broken, task, [data], config, iterations=5, device="cpu", refresh_interval=0.2)
assert bad.wait(120) == "error"
assert "ValueError: broken forward" in bad.error and "Traceback" in bad.error_box.value
assert bad.trainer._build is None and not multiprocessing.active_children()
print(json.dumps({"error_id": bad.error_box.model_id}))
'''

# Validation: the panel is part of the displayed dashboard and fills as validations land.
VALIDATION = '''
val = make_synthetic_data(work / "val.zarr", dims=2, shape=(96, 96), seed=3)
checked = train_in_notebook(work / "validated", fresh_model(), task, [data], config, iterations=4, device="cpu",
                            refresh_interval=0.1, validation_datasets=[val], validation_interval=2)
assert checked.validation.widget in checked.widget.children
assert checked.wait(120) == "finished"
print(json.dumps({"label_id": checked.validation.label.model_id, "image_id": checked.validation.image.model_id,
                  "draws": checked.validation.draws, "iterations": sorted({r["iteration"] for r in checked.validation.rows}),
                  "label": checked.validation.label.value}))
'''


def widget_state(nb):
    return nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]


def last_json(cell):
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    return json.loads(text.strip().splitlines()[-1])


def test_dashboard_in_a_kernel(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in (SETUP.format(work=str(tmp_path)), START, CONTROL, ERROR, VALIDATION)]
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}},
                   store_widget_state=True).execute()
    nbformat.write(nb, tmp_path / "executed.ipynb")   # kept with pytest's tmp_path for a look after a failure

    # The panel is displayed as a widget view (a Jupyter frontend renders it), not as text.
    views = [o for o in nb.cells[1].outputs if o.output_type == "display_data"]
    assert views and "application/vnd.jupyter.widget-view+json" in views[0]["data"]
    assert views[0]["data"]["text/plain"].startswith("TrainingDashboard(")  # static pages: one line, not VBox(...)

    info, error = last_json(nb.cells[2]), last_json(nb.cells[3])
    assert info["status"] == "stopped" and 5 <= info["done"] < 400
    assert info["label"].startswith(f"iteration {info['done']}/400")
    assert info["titles"] == ["raw", "gt", "target", "prediction"]

    # What the frontend received over the comms (sent from the refresher thread) matches the kernel's state.
    state = widget_state(nb)
    progress = state[info["progress_id"]]["state"]
    assert (progress["value"], progress["max"]) == (info["done"], 400)
    for key in ("curves_id", "snapshot_id"):
        image = state[info[key]]
        assert image["state"]["_model_name"] == "ImageModel"
        data = image.get("buffers", [{}])[0].get("data", "") if image.get("buffers") else image["state"].get("value", "")
        assert base64.b64decode(data)[:4] == b"\x89PNG", f"{key}: no PNG reached the frontend"
    assert "broken forward" in state[error["error_id"]]["state"]["value"]

    # The validation panel appeared empty and was redrawn as validations landed; the frontend got its text and picture.
    validation = last_json(nb.cells[4])
    assert validation["iterations"] == [2, 4] and validation["draws"] >= 2, validation
    assert state[validation["label_id"]]["state"]["value"] == validation["label"] and validation["label"].startswith("best voi")
    image = state[validation["image_id"]]
    data = image.get("buffers", [{}])[0].get("data", "") if image.get("buffers") else image["state"].get("value", "")
    assert base64.b64decode(data)[:4] == b"\x89PNG", "no validation picture reached the frontend"
