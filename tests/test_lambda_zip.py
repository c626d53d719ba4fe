"""The deployment zip is self-contained: unpacked alone, its handler answers an event.

`python3 dev.py test` builds `build/lambda-host.zip` first with infra/bundle.py, the same
`pip --platform ... --only-binary=:all:` path as the deploy build, for this machine's
architecture and Python so that it can be imported here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import SECRET

ROOT = Path(__file__).resolve().parent.parent
ZIP = Path(os.environ.get("LAMBDA_TEST_ZIP", ROOT / "build" / "lambda-host.zip"))

INVOKE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from app.lambda_handler import handler
event = json.loads(sys.argv[2])
answers = [handler(event, None) for _ in range(3)]
print(json.dumps({"answers": answers,
                  "outside": sorted({m.__file__.split(sys.argv[1])[0] for m in sys.modules.values()
                                     if getattr(m, "__file__", None) and "-packages" in m.__file__
                                     and sys.argv[1] not in m.__file__})}))
"""


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not ZIP.exists():
        pytest.fail(f"{ZIP} is missing: run 'python3 dev.py test' (it builds the zip first)")
    target = tmp_path_factory.mktemp("lambda")
    with zipfile.ZipFile(ZIP) as archive:
        archive.extractall(target)
    return target


def test_zip_holds_the_service_and_no_dev_tools(unpacked: Path) -> None:
    assert (unpacked / "app" / "lambda_handler.py").is_file()
    assert (unpacked / "well_known" / "logo.png").is_file()
    assert (unpacked / "app" / "connectors" / "podcasts" / "sample_data" / "catalog.json").is_file()
    # uvicorn is in: the MCP SDK needs it (mcp.server -> sse_starlette -> uvicorn.main).
    for unwanted in ("tests", "pytest", "respx", "ruff", "mypy", "moto", "boto3", "aiohttp"):
        assert not (unpacked / unwanted).exists(), unwanted
    assert not list(unpacked.rglob("__pycache__"))


def test_handler_imported_from_the_zip_answers_events(unpacked: Path) -> None:
    event = json.loads((ROOT / "tests" / "events" / "http-api.json").read_text())
    event.update(
        rawPath="/api/v2/search_episodes",
        rawQueryString="q=compiler",
        headers={
            "host": "abc.execute-api.eu-west-1.amazonaws.com",
            "authorization": f"Bearer {SECRET}",
        },
        cookies=[],
    )
    event["requestContext"]["http"].update(method="GET", path="/api/v2/search_episodes")
    env = {"PATH": os.environ.get("PATH", ""), "CHATGPT_SECRET": SECRET, "HOME": str(unpacked)}
    # -I -S: no site-packages and no PYTHON* variables, so only the zip's files can be used.
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", INVOKE, str(unpacked), json.dumps(event)],
        capture_output=True,
        text=True,
        env=env,
        cwd=unpacked,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["outside"] == []  # nothing was imported from outside the zip
    for answer in report["answers"]:  # three warm invocations
        assert answer["statusCode"] == 200
        assert json.loads(answer["body"])["results"]
