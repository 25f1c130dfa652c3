"""Coverage-guided fuzz target: any bytes either decode or raise WBXMLError.

    .venv/bin/pip install -e '.[fuzz]'
    .venv/bin/python fuzz/fuzz_decode.py -atheris_runs=200000 fuzz/corpus

atheris instruments the Python code only; the C translator is covered by the
differential check (its coverage is not fed back to the fuzzer).

Seeds: the EAS WBXML vectors of ../shared/fixtures/eas-corpus (copied into
fuzz/corpus/ at start, which is git-ignored). Whatever decodes must also
encode, and decode again to the same bytes. Differential: where the C fast
paths (wbxml/csrc/) give an answer it must be the Python paths' answer,
and they must decline whatever the Python paths refuse.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    import wbxml
    from wbxml import decoder, encoder

LIMITS = decoder.Limits()


def test_one_input(data: bytes) -> None:
    fast = decoder._speedups.translate(data, LIMITS.max_depth, LIMITS.max_elements, LIMITS.max_string) \
        if decoder._speedups else None
    try:
        slow = decoder.translate_python(data, LIMITS)
    except wbxml.WBXMLError:
        if fast is not None:
            raise AssertionError("the C translator accepted what the Python translator refuses") from None
        return
    if fast is not None and fast != slow:
        raise AssertionError("the C and Python translators disagree")
    try:
        root = wbxml.decode(data)
    except wbxml.WBXMLError:
        return
    encoded = wbxml.encode(root)
    if encoded != encoder.encode_python(root):
        raise AssertionError("the C and Python encoders disagree")
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
