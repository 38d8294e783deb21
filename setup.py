"""The repository root is the `pixelplan` package: `pixelplan.envs` is ./envs and so on.

Mapping through package-dir means nothing installs a bare top-level `distributed`
(Dask owns that name). pyproject.toml holds everything else.
"""
from setuptools import find_packages, setup

SUBPACKAGES = ("envs", "agents", "distributed", "bench")
packages = ["pixelplan"] + [
    f"pixelplan.{name}" for name in find_packages(include=[f"{p}*" for p in SUBPACKAGES])
]
setup(
    package_dir={"pixelplan": "."},
    packages=packages,
    package_data={"pixelplan": ["envs/data/*", "distributed/grpc/*.proto", "k8s/*.yaml"]},
)
