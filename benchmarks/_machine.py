"""One line that names the machine a benchmark ran on, for the figures it prints.

``platform.processor()`` is empty or just ``x86_64`` on Linux, and the CPU's vector units decide
most of these figures (an AVX2-only core, AVX-512, or AMX for bf16 are different worlds), so the
line reads the model name and the relevant instruction-set flags from ``/proc/cpuinfo``.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# cpuinfo flags that change which kernels oneDNN, MKL and ONNX Runtime's MLAS can use (avx512_vnni
# and amx_int8: the int8 dot-product instructions).
_ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_description() -> str:
    """``"Intel(R) Xeon(R) Processor, 2 logical CPUs, ISA avx2 avx512f ..."`` for this machine."""
    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and not model:
                model = value.strip()
            elif key == "flags" and not flags:
                flags = set(value.split())
    except OSError:  # not Linux
        pass
    model = model or platform.processor() or platform.machine()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    isa = " ".join(f for f in _ISA_FLAGS if f in flags) or "unknown"
    return f"{model}, {cpus} logical CPUs, ISA {isa}"


if __name__ == "__main__":
    print(cpu_description())
