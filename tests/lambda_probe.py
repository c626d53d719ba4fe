"""Run inside an unpacked Lambda bundle, as Lambda would: `python -I -S lambda_probe.py
BUNDLE EVENTS_JSON [RUNTIME]`. No site-packages and no PYTHON* variables, so only the
bundle (and RUNTIME: what the Lambda runtime itself provides, i.e. boto3) can be imported.

Imports the handler, answers each event of EVENTS_JSON (a file holding a list of API
Gateway events) in order, and prints one JSON document: each answer, every module
imported, by where it came from ("bundle", "runtime", "stdlib" or "outside"), and the
source files compiled to bytecode on import ("compiled": those that had no usable `.pyc`).
Not a test module: tests/test_lambda_zip.py runs it.
"""

import json
import sys
import sysconfig
from importlib.machinery import SourceFileLoader

compiled: list[str] = []
_source_to_code = SourceFileLoader.source_to_code


def _recorded(self, data, path, *args, **kwargs):  # type: ignore[no-untyped-def]
    # The import system calls this only when a module's `.pyc` is missing or stale.
    compiled.append(str(path))
    return _source_to_code(self, data, path, *args, **kwargs)


SourceFileLoader.source_to_code = _recorded  # type: ignore[method-assign]

bundle, events_file = sys.argv[1], sys.argv[2]
runtime = sys.argv[3] if len(sys.argv) > 3 else None
sys.path.insert(0, bundle)
if runtime:
    sys.path.append(runtime)  # after the bundle, as on Lambda (/var/task before /var/runtime)

from app.lambda_handler import handler  # noqa: E402

with open(events_file) as f:
    events = json.load(f)
answers = [handler(event, None) for event in events]

stdlib = sysconfig.get_paths()["stdlib"]
origins: dict[str, str] = {}
for name, module in list(sys.modules.items()):
    path = getattr(module, "__file__", None) or ""
    if name in ("__main__", "__mp_main__"):  # this script
        origins[name] = "probe"
    elif not path:
        origins[name] = "builtin"
    elif path.startswith(bundle):
        origins[name] = "bundle"
    elif runtime and path.startswith(runtime):
        origins[name] = "runtime"
    elif path.startswith(stdlib) and "-packages" not in path:
        origins[name] = "stdlib"
    else:
        origins[name] = "outside:" + path
print(json.dumps({"answers": answers, "modules": origins, "compiled": compiled}))
