"""Build of the optional C fast path of the WBXML encoder (wbxml/_speedups.c).

Everything else is in pyproject.toml. The extension reads lxml's element
structs through lxml's public C-API, so it compiles against the headers that
lxml ships (lxml.get_include()). It is optional: without a C compiler the
install still succeeds and wbxml.encode uses its pure Python path.
"""

import lxml
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wbxml._speedups",
            sources=["wbxml/_speedups.c"],
            include_dirs=lxml.get_include(),
            optional=True,
        )
    ]
)
