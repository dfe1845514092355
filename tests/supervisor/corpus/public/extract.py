"""Cut the CUDA cases of the corpus out of public GitHub issues, and keep their manifest rows.

No GPU here, so these logs were not recorded on our machine: each is a block that a person
pasted into a public issue (what pytorch, NCCL, cuBLAS, cuDNN printed on their machine), cut
at line breaks and with personal paths replaced. `sources.json` says, for every case, the
issue's URL and which comment, the block's first and last line as pasted, the replacements,
the exit code the supervisor would see (and why it is assumed) and the expected verdict.

    # 1. save the issue text (the comment's markdown, e.g. `gh api repos/O/R/issues/N` or
    #    `.../issues/comments/ID`, field "body", written out as text) to FILE, then
    python3 tests/supervisor/corpus/public/extract.py cut CASE_ID FILE
    # 2. after editing sources.json: its rows into manifest.json (replacing the old ones)
    python3 tests/supervisor/corpus/public/extract.py manifest
    # 3. every log still matches sources.json (first/last line, no replaced text left)
    python3 tests/supervisor/corpus/public/extract.py check

`cut` applies `replace` (regexes, in order: personal paths to /home/user; the pattern itself
names no one), then keeps the lines from the first one equal to `first` to the next one equal
to `last`, both included: nothing is typed or re-wrapped.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.dirname(HERE)
SOURCES = os.path.join(HERE, "sources.json")
MANIFEST = os.path.join(CORPUS, "manifest.json")


def sources() -> dict[str, dict[str, Any]]:
    with open(SOURCES, encoding="utf-8") as fh:
        return {row["id"]: row for row in json.load(fh)["cases"]}


def log_path(row: dict[str, Any]) -> str:
    return os.path.join(HERE, "logs", row["id"] + ".log")


def cleaned(text: str, row: dict[str, Any]) -> str:
    for pattern, new in row.get("replace", []):
        text = re.sub(pattern, new, text)
    return text


def cut(row: dict[str, Any], text: str) -> str:
    lines = cleaned(text.replace("\r\n", "\n"), row).split("\n")
    start = lines.index(row["first"])
    end = lines.index(row["last"], start)
    return "\n".join(lines[start : end + 1]) + "\n"


def manifest_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "log": "public/logs/%s.log" % row["id"],
        "exit_code": row["exit_code"],
        "how": row["how"],
        "command": "(not run here: pasted in a public issue)",
        "source": "public issue",
        "url": row["url"],
        "exit_code_note": row["exit_code_note"],
        "expect": row["expect"],
    }


def write_manifest() -> None:
    with open(MANIFEST, encoding="utf-8") as fh:
        manifest = json.load(fh)
    kept = [c for c in manifest["cases"] if c.get("source") != "public issue"]
    manifest["cases"] = kept + [manifest_row(row) for row in sources().values()]
    with open(MANIFEST, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1)
        fh.write("\n")


def problems() -> list[str]:
    found = []
    for row in sources().values():
        with open(log_path(row), encoding="utf-8") as fh:
            text = fh.read()
        lines = text.rstrip("\n").split("\n")
        if lines[0] != row["first"] or lines[-1] != row["last"]:
            found.append("%s: first or last line differs from sources.json" % row["id"])
        if cleaned(text, row) != text:
            found.append("%s: a personal path is left" % row["id"])
    return found


def main(argv: list[str]) -> int:
    if argv[:1] == ["cut"] and len(argv) == 3:
        row = sources()[argv[1]]
        with open(argv[2], encoding="utf-8") as fh:
            block = cut(row, fh.read())
        with open(log_path(row), "w", encoding="utf-8") as fh:
            fh.write(block)
        return 0
    if argv == ["manifest"]:
        write_manifest()
        return 0
    if argv == ["check"]:
        found = problems()
        print("\n".join(found) or "ok")
        return 1 if found else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
