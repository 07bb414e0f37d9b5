"Per-block setups with faults, for tests/test_blockwise.py: slow blocks, a failing block, workers that die."
import os, time
from dacapo_nb.blockwise_predict import predict_block_setup

def delayed_predict_setup(seconds: float):
    "A per-block setup: the real per-block predict, `seconds` slower per block."
    def setup(spec, worker_id):
        process = predict_block_setup(spec, worker_id)
        def delayed(block):
            time.sleep(seconds); process(block)
        return delayed
    return setup

slow_predict_setup = delayed_predict_setup(0.25)  # so a test can kill a run halfway
held_predict_setup = delayed_predict_setup(2.0)   # a run that holds its output's lock long enough for a second one to meet it

def failing_predict_setup(spec, worker_id):
    "The real predict, except that the block whose write ROI starts at the origin raises."
    process = predict_block_setup(spec, worker_id)
    def failing(block):
        if all(b == 0 for b in block.write_roi.begin): raise ValueError("injected failure")
        process(block)
    return failing

def dying_setup(spec, worker_id):
    "A worker that dies (as by kill -9) on its first block."
    def die(block): os._exit(9)
    return die
