"""Build of the optional C fast paths of the WBXML codec (wbxml/csrc/).

Everything else is in pyproject.toml. The extension reads lxml's element
structs through lxml's public C-API, so it compiles against the headers that
lxml ships (lxml.get_include()). It is optional: without a C compiler the
install still succeeds and wbxml uses its pure Python paths.
"""

import lxml
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wbxml._speedups",
            sources=[f"wbxml/csrc/{name}.c" for name in ("module", "encode", "decode")],
            depends=["wbxml/csrc/speedups.h"],
            include_dirs=["wbxml/csrc", *lxml.get_include()],
            optional=True,
        )
    ]
)
