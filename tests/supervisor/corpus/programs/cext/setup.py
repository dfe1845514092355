from setuptools import Extension, setup

setup(name="fastops", version="0.1", ext_modules=[Extension("fastops", ["fastops.c"])])
