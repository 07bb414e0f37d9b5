"What the benchmark scripts share: how they run their `main`."
import sys
import traceback


def run_main(main) -> None:
    "Run a benchmark's `main`: a failure prints its traceback (after any figures already printed) and exits 1."
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
