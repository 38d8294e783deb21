"""Refresh the trimmed KubeRay schema the tests validate RayJobs against.

    python k8s/schemas/extract_crd_schema.py PATH/TO/ray.io_rayjobs.yaml

Keeps only the served-and-stored version's openAPIV3Schema without `status` (manifests never
set it), written as sorted, gzip-compressed JSON with a fixed timestamp so a refresh from the
same CRD gives byte-identical output.
"""
from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import yaml

OUT = Path(__file__).with_name("rayjob.ray.io_v1.schema.json.gz")


def extract(crd_path: Path) -> dict:
    crd = yaml.safe_load(crd_path.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema = version["schema"]["openAPIV3Schema"]
    schema["properties"].pop("status", None)
    return {"apiVersion": f"{crd['spec']['group']}/{version['name']}", "kind": crd["spec"]["names"]["kind"],
            "openAPIV3Schema": schema}


def main(argv: list[str]) -> None:
    data = json.dumps(extract(Path(argv[0])), sort_keys=True, separators=(",", ":")).encode()
    with open(OUT, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as out:
        out.write(data)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
