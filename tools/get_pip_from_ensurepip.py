# Stand-in for get-pip.py, placed in ansible-test's bootstrap cache by
# scripts/setup.sh. It installs the requested packages (pip==X, ...) with the
# pip wheel that ships inside the interpreter's ensurepip, so no download of
# get-pip itself is needed; the packages come from the configured index.
import glob
import os
import sys

import ensurepip

bundled = glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled", "pip-*.whl"))
if not bundled:
    sys.exit("ensurepip has no bundled pip wheel in this interpreter")
sys.path.insert(0, bundled[0])

from pip._internal.cli.main import main as pip_main  # noqa: E402  pylint: disable=wrong-import-position

# get-pip's own switches; everything else is passed to "pip install".
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}
sys.exit(pip_main(["install"] + [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]))
