"""Coverage-guided fuzz target: any bytes either decode or raise WBXMLError.

    .venv/bin/pip install -e '.[fuzz]'
    .venv/bin/python fuzz/fuzz_decode.py -atheris_runs=200000 fuzz/corpus

Seeds: the EAS WBXML vectors of ../shared/fixtures/eas-corpus (copied into
fuzz/corpus/ at start, which is git-ignored). Whatever decodes must also
encode, and decode again to the same bytes.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    import wbxml


def test_one_input(data: bytes) -> None:
    try:
        root = wbxml.decode(data)
    except wbxml.WBXMLError:
        return
    encoded = wbxml.encode(root)
    if wbxml.encode(wbxml.decode(encoded)) != encoded:
        raise AssertionError("encode(decode(encode(x))) is not stable")


def _seed(corpus: Path) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    shared = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "eas-corpus"
    for path in shared.rglob("*.wbxml"):
        shutil.copy(path, corpus / path.name)


if __name__ == "__main__":
    dirs = [a for a in sys.argv[1:] if not a.startswith("-")]
    if dirs:
        _seed(Path(dirs[0]))
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
