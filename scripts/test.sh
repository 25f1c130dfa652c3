#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: creates .venv, installs
# the project with its test extras and the system packages the tests need
# (libwbxml2-utils: the independent WBXML codec oracle; apache2: the reverse
# proxy of deploy/apache; chromium + chromium-driver: the admin page tests;
# gcc + python3-dev where missing: the codec's C fast path),
# then runs pytest.
# Extra arguments go to pytest, e.g.  scripts/test.sh -k codepages
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "$@" >/dev/null
}

missing=()
command -v wbxml2xml >/dev/null 2>&1 || missing+=(libwbxml2-utils)
command -v apache2 >/dev/null 2>&1 || missing+=(apache2)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
# The codec's C fast path (wbxml/csrc/) needs a compiler and Python.h.
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
python3 -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || missing+=(python3-dev)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,bench]'

exec .venv/bin/python -m pytest "$@"
