"""Build script for dtnn: package metadata and the Cython/C kernel extensions.

Extensions (Cython wrappers in dtnn/_kernels/, plain C in csrc/): see KERNEL_MODULES.
They are built for the baseline ISA, so they run on any x86-64 CPU; AVX2 / AVX-512
paths use function-level target attributes and are picked at run time (csrc/isa.c,
DTNN_ISA caps them).

OpenMP is used only if a probe program compiles, links and runs with the
configured compiler.  Environment switches:
  DTNN_NO_OPENMP=1     build without OpenMP (skip the probe)
  DTNN_MARCH_NATIVE=1  add -march=native (the binaries then only run on CPUs
                       like the build machine)
"""
import os
import re
import subprocess
import sys
import tempfile

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))

_OMP_PROBE = r"""
#include <omp.h>
#include <stdio.h>
int main(void)
{
    int team = 0;
#pragma omp parallel reduction(+ : team)
    team += 1;
    printf("%d %d\n", team, omp_get_max_threads());
    return team >= 1 ? 0 : 1;
}
"""


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _version():
    with open(os.path.join(HERE, "dtnn", "__init__.py"), encoding="utf-8") as fh:
        match = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', fh.read(), re.M)
    if not match:
        raise RuntimeError("cannot find __version__ in dtnn/__init__.py")
    return match.group(1)


def _openmp_flags(compiler):
    """(compile_args, link_args) for OpenMP with this compiler, or None."""
    if compiler.compiler_type == "msvc":
        return ["/openmp"], []
    return ["-fopenmp"], ["-fopenmp"]


def _probe_openmp(compiler, cflags, lflags):
    """Compile, link and run a tiny OpenMP program; return None or why it failed."""
    with tempfile.TemporaryDirectory(prefix="dtnn-omp-") as tmp:
        src = os.path.join(tmp, "omp_probe.c")
        with open(src, "w") as fh:
            fh.write(_OMP_PROBE)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
        except Exception as exc:  # CompileError, or a missing compiler
            return f"compile failed ({type(exc).__name__})"
        try:
            compiler.link_executable(objs, "omp_probe", output_dir=tmp,
                                     extra_postargs=lflags)
        except Exception as exc:  # LinkError
            return f"link failed ({type(exc).__name__})"
        exe = os.path.join(tmp, "omp_probe" + (compiler.exe_extension or ""))
        try:
            res = subprocess.run([exe], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"run failed ({type(exc).__name__})"
        if res.returncode != 0:
            return f"probe exited with status {res.returncode}"
    return None


class BuildExt(build_ext):
    """build_ext that picks optimisation and OpenMP flags for the actual compiler."""

    def build_extensions(self):
        compiler = self.compiler
        msvc = compiler.compiler_type == "msvc"
        cflags = ["/O2"] if msvc else ["-O3"]
        lflags = []
        if not msvc and _flag("DTNN_MARCH_NATIVE"):
            cflags.append("-march=native")

        if _flag("DTNN_NO_OPENMP"):
            use_omp, why = False, "DTNN_NO_OPENMP is set"
        else:
            omp_c, omp_l = _openmp_flags(compiler)
            why = _probe_openmp(compiler, omp_c, omp_l)
            use_omp = why is None
        if use_omp:
            cflags += omp_c
            lflags += omp_l
            print("dtnn: OpenMP probe passed; building kernels with OpenMP")
        else:
            if not msvc:
                cflags.append("-Wno-unknown-pragmas")
            print(f"dtnn: NOTICE: building kernels WITHOUT OpenMP ({why}); "
                  "they will run on one thread")

        for ext in self.extensions:
            extra = [] if msvc else _GCC_EXTRA_CFLAGS.get(ext.name.rsplit(".", 1)[-1], [])
            ext.extra_compile_args = list(ext.extra_compile_args or []) + cflags + extra
            ext.extra_link_args = list(ext.extra_link_args or []) + lflags
        super().build_extensions()


#: per-module flags for gcc/clang: sqrtf's errno branch keeps the Adam loop scalar
#: (#pragma GCC optimize does not reach it); nothing in csrc/optim.c reads errno
_GCC_EXTRA_CFLAGS = {"_optim": ["-fno-math-errno"], "_fused": ["-fno-math-errno"]}

#: compiled module (dtnn._kernels.<name>, from dtnn/_kernels/<name>.pyx) -> its C sources
KERNEL_MODULES = {
    "_im2col": ["csrc/im2col.c", "csrc/im2col_fused.c", "csrc/im2col_fused_live.c",
                "csrc/im2col_fused_avx512.c",
                "csrc/im2col_fused_avx2.c", "csrc/isa.c"],
    "_pool": ["csrc/pool.c"],
    "_bnact": ["csrc/bnact.c"],
    "_winograd": ["csrc/winograd.c", "csrc/isa.c"],
    "_direct": ["csrc/direct.c", "csrc/isa.c"],
    "_infer": ["csrc/infer.c", "csrc/isa.c"],
    "_transpose": ["csrc/transpose.c"],
    "_optim": ["csrc/optim.c"],
    "_rng": ["csrc/rng.c"],
    "_gemm": ["csrc/gemm.c"],
    "_compress": ["csrc/compress.c", "csrc/compress_topk.c", "csrc/compress_qring.c",
                  "csrc/bitpack.c", "csrc/isa.c"],
    "_summable": ["csrc/lowrank.c", "csrc/randomk.c"],
    # the qring's final decode fused into the SGD update: it calls the decode of
    # compress.c and the update of optim.c, linked into this module as well
    "_fused": ["csrc/decode_update.c", "csrc/compress.c", "csrc/compress_topk.c",
               "csrc/compress_qring.c",
               "csrc/bitpack.c", "csrc/isa.c", "csrc/optim.c"],
}


def _extensions():
    import numpy as np

    common = dict(
        include_dirs=["csrc", np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        depends=["csrc/dtnn_kernels.h", "csrc/dtnn_isa.h", "csrc/im2col_fused.h",
                 "csrc/im2col_fused_ops.h", "csrc/infer.h", "csrc/bnact.h", "csrc/optim.h", "csrc/rng.h", "csrc/gemm.h", "csrc/lowrank.h", "csrc/randomk.h",
                 "csrc/decode_update.h", "csrc/compress.h",
                 "csrc/infer_tmpl.h",
                 "csrc/im2col_fused_dbw_tmpl.h", "csrc/im2col_fused_pw_tmpl.h",
                 "dtnn/_kernels/_ckernels.pxd", "dtnn/_kernels/_isa.pxi",
                 "dtnn/_kernels/_compress_decl.pxi", "dtnn/_kernels/_arrays.pxi",
                 "dtnn/_kernels/_vec.pxi"],
    )
    exts = [Extension(f"dtnn._kernels.{name}", [f"dtnn/_kernels/{name}.pyx", *c_sources],
                      **common)
            for name, c_sources in KERNEL_MODULES.items()]
    try:
        from Cython.Build import cythonize
    except ImportError:
        # No Cython: fall back to previously generated C files if present.
        for ext in exts:
            ext.sources = [s[:-4] + ".c" if s.endswith(".pyx") else s for s in ext.sources]
            missing = [s for s in ext.sources if not os.path.exists(os.path.join(HERE, s))]
            if missing:
                sys.exit(f"dtnn: Cython>=3 is required to build {ext.name} "
                         f"(missing {', '.join(missing)})")
        return exts
    return cythonize(
        exts,
        include_path=[HERE],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
    )


setup(
    name="dtnn",
    version=_version(),
    description="Distributed deep-learning training for CPU clusters "
                "(numpy/Cython kernels + MPI)",
    python_requires=">=3.10",
    packages=find_packages(include=["dtnn", "dtnn.*"]),
    package_data={"dtnn.serve": ["static/*.html", "static/*.js", "static/*.css",
                                 "static/*.svg"]},
    include_package_data=False,
    exclude_package_data={"": ["*.pyx", "*.pxd", "*.c", "*.h"]},
    ext_modules=_extensions(),
    cmdclass={"build_ext": BuildExt},
    install_requires=[
        "numpy>=2",
        "mpi4py>=4",
        "h5py",
        "threadpoolctl",
        "tqdm",
        "matplotlib",
        "scikit-learn",
        "scipy",
        # dtnn serve / predict: web stack and image decoding
        "starlette",
        "uvicorn",
        "Pillow",
    ],
    extras_require={
        "test": ["pytest", "pytest-mpi", "pytest-timeout", "onnx", "onnxruntime",
                 "torch-pruning", "pdoc",    # pdoc: the API reference (tests/test_api_reference.py)
                 # serve: Starlette's test client and the browser test (system chromium)
                 "httpx2", "playwright"],
        # dtnn export --onnx, dtnn bench infer's ONNX Runtime peer, the torch-pruning peer
        "export": ["onnx", "onnxruntime", "torch-pruning"],
        # Always pinned: an unpinned torch resolves to multi-GB CUDA wheels.
        "torch": ["torch==2.13.0"],
    },
    entry_points={"console_scripts": ["dtnn = dtnn.cli.main:main"]},
    zip_safe=False,
)
