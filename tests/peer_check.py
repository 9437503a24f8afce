"""The peer scripts' shared reporting: `check(name, fn)` runs one check, prints ok or FAIL with
the error, and goes on; `finish()` prints the tally and exits 1 if any check failed."""
import sys

passed, failed = 0, 0


def check(name, fn):
    global passed, failed
    try:
        fn()
        passed += 1
        print(f"ok   {name}")
    except Exception as e:  # noqa: BLE001 - report every failure and go on
        failed += 1
        print(f"FAIL {name}: {type(e).__name__}: {e}")


def finish():
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
