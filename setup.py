"""Build hook: the wheel leaves out the package's own tests (everything else is in pyproject.toml).

The unit tests live beside the code (`kokoyi/**/*_test.py`, with `kokoyi/conftest.py` and
`kokoyi/test_utils.py`, which only they use). setuptools' package-data excludes cannot drop
Python modules, so build_py filters them; an editable install still points at the source
tree, where pytest finds them.
"""
from __future__ import annotations

import fnmatch

from setuptools import setup
from setuptools.command.build_py import build_py

TEST_MODULES = ("*_test", "conftest", "test_utils")


class BuildPyWithoutTests(build_py):
    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        return [(pkg, module, path) for pkg, module, path in modules
                if not any(fnmatch.fnmatch(module, pattern) for pattern in TEST_MODULES)]


setup(cmdclass={"build_py": BuildPyWithoutTests})
