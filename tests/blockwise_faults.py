"Per-block setups with faults, for tests/test_blockwise.py: slow blocks, a failing block, workers that die."
import os, time
from dacapo_nb.blockwise import predict_block_setup

def slow_predict_setup(spec, worker_id):
    "The real per-block predict, a quarter second slower per block (so a test can kill a run halfway)."
    process = predict_block_setup(spec, worker_id)
    def slow(block):
        time.sleep(0.25); process(block)
    return slow

def held_predict_setup(spec, worker_id):
    "The real per-block predict, two seconds slower per block: a run that holds its output's lock long enough for a second one to meet it."
    process = predict_block_setup(spec, worker_id)
    def held(block):
        time.sleep(2.0); process(block)
    return held

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
