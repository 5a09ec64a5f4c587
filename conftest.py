"""For the whole test run (tests and doctests): remembered batch sizes go to a folder of
this run, never the user's cache, so no test depends on what an earlier run measured."""

import os
import shutil
import tempfile

_CACHE = tempfile.mkdtemp(prefix="expresso-xai-test-cache-")


def pytest_configure(config):
    os.environ["EXPRESSO_XAI_CACHE"] = _CACHE


def pytest_unconfigure(config):
    shutil.rmtree(_CACHE, ignore_errors=True)
