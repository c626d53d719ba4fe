"""The README stays true to the code: its commands and the instructions it suggests."""

from __future__ import annotations

import re
from pathlib import Path

from app.connectors.podcasts import PLUGIN

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_readme_opens_with_the_two_commands_ci_runs() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, re.DOTALL)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["python3 dev.py serve", "python3 dev.py test"]
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "python3 dev.py test" in ci


def test_gpt_instructions_are_the_manifests_description_for_model() -> None:
    section = README.split("## Use it as a GPT Action", 1)[1].split("\n## ", 1)[0]
    quoted = " ".join(
        line.strip().removeprefix(">").strip()
        for line in section.splitlines()
        if line.strip().startswith(">")
    )
    assert quoted == PLUGIN.description_for_model


def _service_error_codes() -> set[str]:
    from app.errors import ServiceError, UpstreamError

    classes, seen = [ServiceError], set()
    while classes:
        cls = classes.pop()
        seen.add(cls)
        classes.extend(cls.__subclasses__())
    # UpstreamError is only a base: every upstream failure is one of its subclasses. A class
    # whose instances pick their code (LimitExceeded) lists them in `codes`.
    codes = {cls.code for cls in seen if cls is not UpstreamError and "code" in vars(cls)}
    return codes | {code for cls in seen for code in getattr(cls, "codes", ())}


def _codes_in_source() -> set[str]:
    """Codes written next to their status where an error in the project's shape is built:
    `error_response(404, "not_found", …)`, `_fail(…)`, the server's `_error_answer(…)`."""
    from app.cors import CORS_REFUSED

    root = Path(__file__).resolve().parent.parent / "app"
    files = ["server.py", "problems.py", "mcp_mount.py", "connectors/openai/chat.py"]
    found = {CORS_REFUSED, "http_error"}  # a constant, and handle_http's fallback
    calls = r'(?:error_response|_fail|_error_answer)\(\s*[\w.]+,\s*"([a-z_]+)"'
    statuses = r'\b[1-5]\d\d:\s*"([a-z_]+)"'  # handle_http's {404: "not_found", ...}
    for name in files:
        source = (root / name).read_text()
        found |= set(re.findall(calls, source)) | set(re.findall(statuses, source))
    return found


def test_the_error_table_lists_every_code_the_service_can_answer() -> None:
    section = README.split("## Errors", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\|[^|]*\| `([a-z_]+)` \|", section, re.MULTILINE))
    produced = _service_error_codes() | _codes_in_source()
    assert {"internal_error", "method_not_allowed", "credentials_unavailable"} <= produced
    assert produced - documented == set(), "missing from the README's error table"
    assert documented - produced == set(), "in the README's error table, but never answered"


def test_the_exported_connector_folders_are_git_ignored() -> None:
    root = Path(__file__).resolve().parent.parent
    folders = set(re.findall(r"--out (\S+)", README))
    assert folders >= {"connector", "openai-connector"}
    ignored = (root / ".gitignore").read_text().splitlines()
    for folder in folders:
        assert f"/{folder}/" in ignored or f"{folder}/" in ignored, folder


def test_the_mcp_import_cost_is_the_same_in_the_readme_and_the_code() -> None:
    root = Path(__file__).resolve().parent.parent
    in_readme = re.findall(
        r"MCP SDK is imported on the first `/mcp` request \(it takes about ([\d.]+) s\)", README
    )
    in_code = re.findall(r"about ([\d.]+) s to import", (root / "app" / "mcp_mount.py").read_text())
    assert in_readme and in_readme == in_code
