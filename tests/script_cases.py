"""Runs an entry script's main() on several flag sets in one process, as `app.run` would.

Each train.py / export_tflite.py process spends ~12 s importing TensorFlow before it checks a
flag; the refusal tests run their cases here, in one process per script, and still see what a
user sees: the exit code, stdout, stderr, and a traceback if main() let one escape.

    python tests/script_cases.py train.py results.json < cases.json
cases.json: [[flag, ...], ...]; results.json: [{"args", "code", "stdout", "stderr"}, ...].
"""

import contextlib
import importlib.util
import io
import json
import os
import sys
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    script = os.path.join(ROOT, sys.argv[1])
    sys.path.insert(0, ROOT)
    spec = importlib.util.spec_from_file_location("entry_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from absl import flags
    results = []
    for args in json.load(sys.stdin):
        flags.FLAGS.unparse_flags()
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                argv = flags.FLAGS([script, *args])
                code = module.main(argv)
            except flags.Error as e:                  # what app.run prints and exits with
                print(f"FATAL Flags parsing error: {e}", file=sys.stderr)
                code = 1
            except SystemExit as e:
                code = e.code
            except BaseException:                     # noqa: BLE001  (reported, not hidden)
                traceback.print_exc()
                code = "traceback"
        results.append({"args": args, "code": code, "stdout": out.getvalue(),
                        "stderr": err.getvalue()})
    with open(sys.argv[2], "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
