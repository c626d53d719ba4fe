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
