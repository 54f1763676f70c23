"""Stand-in for ESP-DL 3.3's pack_espdl_models.py (see ../README.md): .espdl files into one PDL3 package.

    python pack_espdl_models.py --model_path A.espdl [B.espdl ...] --out_file models.espdl

PDL3, as ESP-DL's fbs_loader reads it (little-endian): "PDL3", a 16-byte NUL-padded package version,
the package size, its SHA-256 (computed with these 32 bytes zero), the model count; then per model
(sorted by path) its data offset, name offset and name length; the names; zeros up to a 16-byte
boundary; each model's EDL2 file zero-padded to 16 bytes.
"""

import argparse
import hashlib
import struct
from pathlib import Path

HEADER_BYTES = 60
SHA256_OFFSET = 24


def pad16(data: bytes) -> bytes:
    return data + bytes(-len(data) % 16)


def pack(paths: list[Path], version: str = "v1.0") -> bytes:
    paths = sorted(paths)
    names = [p.name.encode() for p in paths]
    models = []
    for p in paths:
        data = p.read_bytes()
        if data[:4] != b"EDL2":
            raise SystemExit(f"{p}: PDL3 packs EDL2 models only")
        models.append(pad16(data))
    name_offset = HEADER_BYTES + 12 * len(paths)
    data_offset = -(-(name_offset + sum(map(len, names))) // 16) * 16
    entries, names_at, data_at = b"", name_offset, data_offset
    for name, model in zip(names, models):
        entries += struct.pack("<III", data_at, names_at, len(name))
        names_at += len(name)
        data_at += len(model)
    body = entries + b"".join(names)
    body += bytes(data_offset - HEADER_BYTES - len(body)) + b"".join(models)
    size = HEADER_BYTES + len(body)
    header = b"PDL3" + version.encode().ljust(16, b"\0") + struct.pack("<I", size) + bytes(32) + struct.pack("<I", len(paths))
    package = bytearray(header + body)
    package[SHA256_OFFSET : SHA256_OFFSET + 32] = hashlib.sha256(package).digest()
    return bytes(package)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="pack .espdl models into one PDL3 package")
    parser.add_argument("-m", "--model_path", nargs="+", type=Path, required=True)
    parser.add_argument("-o", "--out_file", type=Path, required=True)
    args = parser.parse_args()
    args.out_file.parent.mkdir(parents=True, exist_ok=True)
    args.out_file.write_bytes(pack(args.model_path))
