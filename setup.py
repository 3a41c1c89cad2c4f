"""Build cdropout's extension (Cython glue + plain C core) and compile its hot Python modules.

- OpenMP is used when a probe program compiles and links with the compiler's flag; otherwise the
  build goes on single-threaded with a warning.
- The default build targets the baseline ISA. Only the SIMD kernel files get ISA flags, and the
  best kernel is chosen at run time from what the CPU supports (src_c/cdropout.c).
"""
import os
import platform
import shlex
import sys
import tempfile
import textwrap
import warnings
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SRC = "src_c"
CORE_SOURCES = [f"{SRC}/cdropout.c", f"{SRC}/kernels_portable.c"]
# Kernel file -> the ISA flags it alone is compiled with (GCC/Clang spelling).
X86_KERNELS = {
    f"{SRC}/kernels_avx2.c": ["-mavx2", "-mfma", "-mf16c", "-mbmi2"],
    f"{SRC}/kernels_avx512.c": ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mf16c", "-mbmi2"],
}

IS_X86_64 = platform.machine().lower() in ("x86_64", "amd64")


def _is_msvc(compiler):
    return compiler.compiler_type == "msvc"


def _openmp_flags(compiler):
    """Compile and link flags for OpenMP, or None when the compiler can't do it (probed)."""
    if _is_msvc(compiler):
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    code = textwrap.dedent(
        """
        #include <omp.h>
        int main(void) {
            int n = 0;
            #pragma omp parallel reduction(+:n)
            n += 1;
            return n > 0 && omp_get_max_threads() > 0 ? 0 : 1;
        }
        """
    )
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe_openmp.c")
        with open(src, "w") as f:
            f.write(code)
        for cflags, ldflags in candidates:
            try:
                objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
                # setuptools adds LDFLAGS to shared objects only; the probe needs them too (e.g.
                # a sanitizer build's runtime), or it fails and OpenMP is wrongly left out.
                compiler.link_executable(objs, "probe_openmp", output_dir=tmp,
                                         extra_preargs=shlex.split(os.environ.get("LDFLAGS", "")),
                                         extra_postargs=ldflags)
            except Exception:
                continue
            return cflags, ldflags
    return None


class BuildExt(build_ext):
    def build_extensions(self):
        compiler = self.compiler
        msvc = _is_msvc(compiler)
        base = ["/O2"] if msvc else ["-O3", "-std=c11", "-fno-strict-aliasing"]
        omp = _openmp_flags(compiler)
        if omp is None:
            warnings.warn(
                "cdropout: the C compiler cannot build OpenMP code; building single-threaded.",
                stacklevel=1,
            )
        for ext in self.extensions:
            if ext.name != CORE:  # the compiled Python modules: C11 and -O3 are not theirs
                continue
            ext.extra_compile_args = base + (omp[0] if omp else [])
            ext.extra_link_args = omp[1] if omp else []
            if IS_X86_64 and not msvc and X86_KERNELS:
                ext.define_macros.append(("CD_HAVE_X86_KERNELS", "1"))
                for source, isa_flags in X86_KERNELS.items():
                    objs = compiler.compile(
                        [source],
                        output_dir=self.build_temp,
                        include_dirs=[SRC],
                        extra_postargs=base + isa_flags,
                    )
                    ext.extra_objects.extend(objs)
        super().build_extensions()


CORE = "cdropout._core"
ext = Extension(
    CORE,
    sources=["cdropout/_core.pyx", *CORE_SOURCES],
    # Rebuild when any C file changes, including the kernel files compiled on the side.
    depends=sorted(str(p) for p in Path(SRC).glob("*.[ch]")),
    include_dirs=[SRC, np.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
)

# The per-call Python layer (argument checks, seeds) is plain Python, compiled by Cython as it is:
# a small array's call is mostly that layer, and compiled it costs a third less. Annotations are
# not used as C types, so the compiled modules behave exactly as the .py files do.
python_modules = [
    Extension(f"cdropout.{name}", [f"cdropout/{name}.py"]) for name in ("_api", "_apply", "_checks", "_record", "_seeding")
]

setup(
    ext_modules=cythonize(
        [ext, *python_modules],
        compiler_directives={"language_level": "3", "binding": True, "annotation_typing": False},
    ),
    cmdclass={"build_ext": BuildExt},
)
