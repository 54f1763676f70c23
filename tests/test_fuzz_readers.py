"""Fuzzing the readers of what an export writes: seeded bit flips and truncations.

Every damaged file of the committed TCN export is refused: an .espdl by its integrity stamp or by the reader,
the vectors by their reader. None is accepted as valid, none raises anything but the readers' one-line errors.
Damaged files without a stamp (the op fixtures, .espdl files as ESP-DL's tools write them) go on into the
emulator, which must refuse them in one line or run them: never crash, never allocate what no chip could hold.
"""

import random
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from espdl_stream.export import integrity
from espdl_stream.export.emulator import Emulator, EmulatorError
from espdl_stream.export.errors import ExportError
from espdl_stream.export.espdl_file import EspdlFormatError, parse_espdl
from espdl_stream.export.vectors import VectorFormatError, read_vectors

ROOT = Path(__file__).resolve().parent.parent
EXPORT = ROOT / "firmware" / "main" / "models" / "tcn" / "esp32s3"
FIXTURES = sorted((ROOT / "tests" / "fixtures" / "ops").glob("*.espdl"))
CASES = 300  # per file of the export: a few seconds for all three


def damaged(data: bytes, seed: int, count: int):
    """(what, bytes): one flipped bit in three cases of four, else the file cut short."""
    rng = random.Random(seed)
    for k in range(count):
        if k % 4 == 3:
            end = rng.randrange(len(data))
            yield f"cut to {end} bytes", data[:end]
        else:
            at, bit = rng.randrange(len(data)), rng.randrange(8)
            yield f"bit {bit} of byte {at} flipped", data[:at] + bytes([data[at] ^ 1 << bit]) + data[at + 1 :]


@pytest.mark.parametrize("name", ["model.espdl", "streaming_model.espdl"])
def test_every_damaged_espdl_file_is_refused(tmp_path, name):
    path = tmp_path / name
    accepted, crashed = [], []
    for what, data in damaged((EXPORT / name).read_bytes(), seed=15, count=CASES):
        path.write_bytes(data)
        try:
            integrity.read_intact(path)
            accepted.append(what)
        except EspdlFormatError:
            pass
        except Exception as e:  # anything else would be a traceback
            crashed.append(f"{what}: {type(e).__name__}: {e}")
    assert not accepted and not crashed, (accepted, crashed)


def test_every_damaged_vector_file_is_refused():
    accepted, crashed = [], []
    for what, data in damaged((EXPORT / "streaming_vectors.bin").read_bytes(), seed=15, count=CASES):
        try:
            read_vectors(data)
            accepted.append(what)
        except VectorFormatError:
            pass
        except Exception as e:
            crashed.append(f"{what}: {type(e).__name__}: {e}")
    assert not accepted and not crashed, (accepted, crashed)


def test_damaged_files_without_a_stamp_are_refused_or_run_never_crash():
    """Flipped bits in the op fixtures: the reader and the emulator (test inputs, or zeros) refuse in one line
    (ExportError) or compute something; a flip can be harmless (a weight, a name), so no stamp, no detection."""
    crashed, refused = [], 0
    for path in FIXTURES:
        target = "esp32p4" if "esp32p4" in path.name else "esp32s3"
        for what, data in damaged(path.read_bytes(), seed=len(path.name), count=4):
            try:
                espdl = parse_espdl(data, path.name)
                emulator = Emulator(espdl, target)
                emulator.run({name: espdl.test_inputs[name].values if name in espdl.test_inputs else emulator.zeros(name)
                              for name in espdl.inputs})
            except ExportError:
                refused += 1
            except Exception as e:
                crashed.append(f"{path.name}, {what}: {type(e).__name__}: {e}")
    assert not crashed, crashed
    assert refused > len(FIXTURES)  # most cuts and many flips are refused: the loop did reach the readers


def _flip_first_pad_of_2(data: bytes) -> bytes:
    """The issue's case: in the TCN's first depthwise Conv, pads [2, 0] become [8388610, 0] (one bit)."""
    at = data.find(struct.pack("<Iqq", 2, 2, 0)) + 4 + 2  # the third byte of the int64 pad
    assert at > 6
    return data[:at] + bytes([data[at] ^ 0x80]) + data[at + 1 :]


def test_a_pad_flipped_to_8_million_is_refused_before_anything_is_allocated(tmp_path):
    data = _flip_first_pad_of_2((EXPORT / "model.espdl").read_bytes())
    (tmp_path / "model.espdl").write_bytes(data)
    with pytest.raises(EspdlFormatError, match="the file is damaged"):
        integrity.read_intact(tmp_path / "model.espdl")  # the stamp catches it first

    espdl = parse_espdl(data)  # without the stamp's help, as for a file ESP-DL's tools wrote
    assert any(n.attributes.get("pads") == [8388610, 0] for n in espdl.nodes)
    emulator = Emulator(espdl, "esp32s3")
    tracemalloc.start()
    try:
        with pytest.raises(EmulatorError, match=r"the padded input: the shape \[1, 8388658, 96\] holds 805,311,168 "
                                                r"elements, more than the chips' 32 MB of PSRAM can"):
            emulator.run({"x": espdl.test_inputs["x"].values})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20  # refused before the 2 GiB (and then 23 GB) the padding would take


@pytest.mark.parametrize("shape,problem", [([1, 2**31, 2**31], "holds 4,611,686,018,427,387,904 elements"),
                                           ([1, -1, 40], "has a negative size")])
def test_graph_inputs_the_chips_cannot_hold_are_refused_before_zeros_are_made(shape, problem):
    espdl = parse_espdl((EXPORT / "streaming_model.espdl").read_bytes())
    espdl.inputs["x"].dims = shape
    with pytest.raises(EmulatorError, match=problem):
        Emulator(espdl, "esp32s3").zeros("x")


def test_sqrt_newton_of_a_value_that_never_converges_is_refused_not_a_hang():
    from espdl_stream.export.emulator.reduce import sqrt_newton

    assert np.isnan(sqrt_newton(np.float32([np.nan]))[0])  # C's loop ends on a NaN difference
    with pytest.raises(EmulatorError, match="does not converge"):
        sqrt_newton(np.float32([-4.0]))  # ESP-DL would loop forever
