"""Generate the gRPC Python code from planner.proto (``make proto``; also on first import)."""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
GENERATED = HERE / "generated"


def build(force: bool = False) -> Path:
    target = GENERATED / "planner_pb2_grpc.py"
    proto = HERE / "planner.proto"
    if not force and target.exists() and target.stat().st_mtime >= proto.stat().st_mtime:
        return GENERATED
    from grpc_tools import protoc

    GENERATED.mkdir(exist_ok=True)
    (GENERATED / "__init__.py").touch()
    code = protoc.main(["protoc", f"-I{HERE}", f"--python_out={GENERATED}", f"--grpc_python_out={GENERATED}",
                        str(proto)])
    if code != 0:
        raise RuntimeError(f"protoc failed on {proto} (exit {code})")
    # protoc writes a top-level import; the generated package needs a relative one.
    text = target.read_text().replace("import planner_pb2 as", "from . import planner_pb2 as")
    target.write_text(text)
    return GENERATED


if __name__ == "__main__":
    print(build(force="--force" in sys.argv))
