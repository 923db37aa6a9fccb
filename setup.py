"""Builds easyblocks; compiles protos/**/*.proto into easyblocks/protos/*_pb2.py."""

import glob
import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.join(HERE, "protos")


def compile_protos(out_dir: str) -> None:
    """Runs grpc_tools.protoc on every .proto under protos/ into out_dir."""
    import grpc_tools
    from grpc_tools import protoc

    sources = sorted(glob.glob(os.path.join(PROTO_ROOT, "**", "*.proto"), recursive=True))
    if not sources:
        raise RuntimeError(f"no .proto files under {PROTO_ROOT}")
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = ["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{well_known}", f"--python_out={out_dir}"]
    if protoc.main(args + sources) != 0:
        raise RuntimeError("protoc failed on " + " ".join(sources))


class BuildPyWithProtos(build_py):
    """build_py that first generates the _pb2 modules into the source tree, where
    build_py then finds them like any other module (also for editable installs)."""

    def run(self):
        compile_protos(HERE)
        super().run()


setup(
    name="easyblocks",
    version="0.1.0",
    description="Config-driven CTR models on TensorFlow 2 / Keras 3: EasyRec-style backbones, "
    "multi-task and multi-domain blocks",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["easyblocks", "easyblocks.*"]),
    package_data={"easyblocks.protos": ["*.proto"]},
    install_requires=["tensorflow>=2.16", "protobuf>=5", "grpcio-tools>=1.60", "networkx>=3"],
    # parquet: data_config.input_type ParquetInput (TensorFlow has no Parquet reader)
    extras_require={"parquet": ["pyarrow>=10"], "test": ["pytest>=7", "pyarrow>=10"]},
    entry_points={"console_scripts": ["easyblocks=easyblocks.cli:main"]},
    cmdclass={"build_py": BuildPyWithProtos},
)
