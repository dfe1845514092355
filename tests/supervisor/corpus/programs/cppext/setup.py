from setuptools import Extension, setup

setup(
    name="fastops_cpp",
    version="0.1",
    ext_modules=[Extension("fastops_cpp", ["fastops.cpp"], language="c++")],
)
