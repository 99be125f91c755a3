"""setup.py - copies the checkout's build/libduet.so into the package (when
it was built) so `pip install ./python` installs a self-contained package;
the metadata is in pyproject.toml."""
import os
import shutil

from setuptools import setup

here = os.path.dirname(os.path.abspath(__file__))
built = os.path.join(here, "..", os.environ.get("BUILD", "build"), "libduet.so")
target = os.path.join(here, "duet", "libduet.so")
if os.path.exists(built):
    shutil.copyfile(built, target)
elif not os.path.exists(target):
    raise SystemExit("duet: build libduet.so first (run `make` in the checkout root), then pip install ./python")

setup()
