"The one polling helper of the tests (the kernel test keeps its own copy: it runs inside the notebook kernel)."
import time


def wait_until(condition, # a callable that returns True when the wait is over
               timeout: float, # seconds
               what: str, # what is awaited, for the failure's message
              ) -> None:
    "Poll `condition` every 0.05 s until it is true; fail naming `what` after `timeout` seconds."
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline: raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)
