"""Small flowos.Processor subclasses that tests/test_python_processors.py names by import path
(`pyprocs.<module>:<Class>`) in the pipelines it runs. The tests put this folder's parent on
PYTHONPATH. A processor that has something to tell a test writes it as JSON to the file named
by its `out` parameter, at teardown (or as it goes, where a run may not reach its teardown)."""
import json


def save(path, data):
    """Writes data as JSON to path (atomically enough for a test: write, then rename)."""
    if path is None:
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    import os
    os.replace(tmp, path)
