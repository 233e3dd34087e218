# The project is described in pyproject.toml; this file lets old tools install it too.
from setuptools import setup

setup()
