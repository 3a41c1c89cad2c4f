"""Build cdropout's extension (Cython glue + plain C core) and compile its hot Python modules.

Build switches (environment variables):

- ``CDROPOUT_OPENMP``: ``auto`` (default) uses OpenMP when a probe program compiles and links with
  it, else builds single-threaded with a warning; ``0`` builds without OpenMP; ``1`` requires it
  (the build fails without it: wheels for distribution).
- ``CDROPOUT_PORTABLE=1``: only the portable C kernels, no ISA flags at all (the x86-64 SIMD
  kernel files are not compiled).
- ``CDROPOUT_COMPILE_PYTHON=0``: leave the per-call Python layer as plain Python instead of
  compiling it with Cython (same results, slower small calls; a quicker build for tests).
- ``CDROPOUT_LIBOMP_PREFIX``: macOS, where libomp lives (default: Homebrew's, found with
  ``brew --prefix libomp`` or in /opt/homebrew and /usr/local).

The SIMD kernel files are built when the *compiler's target* is x86-64 (a probe compiled with the
build's own flags, so cross compilers, ``ARCHFLAGS`` and ``-arch`` are honoured), never from the
build host's machine name. Only those files get ISA flags; the best kernel is chosen at run time
from what the CPU supports (src_c/cdropout.c). Flags are given for GCC, Clang (Apple's with libomp)
and MSVC.
"""
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SRC = "src_c"
CORE = "cdropout._core"
CORE_SOURCES = [f"{SRC}/cdropout.c", f"{SRC}/kernels_portable.c"]
# Kernel file -> the ISA flags it alone is compiled with, per compiler family.
X86_KERNELS = {
    f"{SRC}/kernels_avx2.c": {
        "gcc": ["-mavx2", "-mfma", "-mf16c", "-mbmi2", "-maes"],
        "msvc": ["/arch:AVX2"],
    },
    f"{SRC}/kernels_avx512.c": {
        "gcc": ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mf16c", "-mbmi2", "-maes", "-mvaes"],
        "msvc": ["/arch:AVX512"],
    },
}
# MSVC builds the portable kernels only: the SIMD kernel files use GCC attributes
# (always_inline, __builtin_expect) and the run-time CPU check uses GCC's __builtin_cpu_supports.
# Set True once both have MSVC spellings; the /arch flags above are then used.
MSVC_SIMD_KERNELS = False

# Compiled with the build's own flags: succeeds only when the compiler targets x86-64.
X86_64_PROBE = """
#if !(defined(__x86_64__) || defined(_M_X64) || defined(_M_AMD64)) || defined(_M_ARM64EC)
#error "not an x86-64 target"
#endif
int cdropout_target_is_x86_64 = 1;
"""

OPENMP_PROBE = """
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 && omp_get_max_threads() > 0 ? 0 : 1;
}
"""


def _switch(name, default, choices):
    value = os.environ.get(name, default).strip().lower() or default
    if value not in choices:
        sys.exit(f"error: {name}={value!r}; use one of {', '.join(choices)}")
    return value


def _note(message):
    # setuptools' own log is silent under `pip install`; stderr reaches `pip -v` and `python -m build`.
    print(f"cdropout build: {message}", file=sys.stderr)


def _try_compile(compiler, code, tmp, name, cflags=(), ldflags=None):
    """Compile (and link, when ldflags is not None) a probe; True when it works."""
    src = os.path.join(tmp, name + ".c")
    with open(src, "w") as f:
        f.write(textwrap.dedent(code))
    try:
        objs = compiler.compile([src], output_dir=tmp, extra_postargs=list(cflags))
        if ldflags is not None:
            # setuptools adds LDFLAGS to shared objects only; the probe needs them too (e.g. a
            # sanitizer build's runtime), or it fails and OpenMP is wrongly left out.
            compiler.link_executable(objs, name, output_dir=tmp,
                                     extra_preargs=shlex.split(os.environ.get("LDFLAGS", "")),
                                     extra_postargs=list(ldflags))
    except Exception:  # CompileError / LinkError of whichever distutils is in use
        return False
    return True


def _libomp_prefixes():
    """macOS: where a Homebrew (or user-given) libomp may live."""
    given = os.environ.get("CDROPOUT_LIBOMP_PREFIX")
    if given:
        return [given]
    found = []
    brew = shutil.which("brew")
    if brew:
        try:
            out = subprocess.run([brew, "--prefix", "libomp"], capture_output=True, text=True,
                                 timeout=60, check=True).stdout.strip()
            if out:
                found.append(out)
        except (OSError, subprocess.SubprocessError):
            pass
    found += ["/opt/homebrew/opt/libomp", "/usr/local/opt/libomp"]
    return [p for p in dict.fromkeys(found) if os.path.isdir(p)]


def _openmp_candidates(msvc):
    """(compile flags, link flags) to try, in order."""
    if msvc:
        return [(["/openmp"], [])]
    if sys.platform == "darwin":
        # Apple clang: OpenMP through the preprocessor and libomp; a GCC or LLVM clang: -fopenmp.
        cands = [(["-Xpreprocessor", "-fopenmp", f"-I{p}/include"], [f"-L{p}/lib", "-lomp"])
                 for p in _libomp_prefixes()]
        return cands + [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    return [(["-fopenmp"], ["-fopenmp"])]


def _openmp_flags(compiler, msvc, tmp):
    for cflags, ldflags in _openmp_candidates(msvc):
        if _try_compile(compiler, OPENMP_PROBE, tmp, "probe_openmp", cflags, ldflags):
            return cflags, ldflags
    return None


class BuildExt(build_ext):
    """Cythonizes at build time (so the sdist holds .pyx/.py sources, never generated C), probes
    the compiler's target and OpenMP, and compiles each SIMD kernel file with its own ISA flags."""

    def run(self):
        from Cython.Build import cythonize

        # Only the sources change (.pyx/.py -> generated .c): the Extension objects stay the ones
        # setuptools finalized.
        cythonized = cythonize(
            self.extensions,
            compiler_directives={"language_level": "3", "binding": True, "annotation_typing": False},
            quiet=True,
            # Generated C goes to the build folder, never next to the sources: a source tree that
            # was built once (pip install .) still makes an sdist without generated C.
            build_dir=os.path.join(self.build_temp, "cython"),
        )
        by_name = {e.name: e for e in cythonized}
        for ext in self.extensions:
            ext.sources = by_name[ext.name].sources
        super().run()

    def build_extensions(self):
        compiler = self.compiler
        msvc = compiler.compiler_type == "msvc"
        openmp = _switch("CDROPOUT_OPENMP", "auto", ("auto", "0", "1"))
        portable = _switch("CDROPOUT_PORTABLE", "0", ("0", "1")) == "1"
        base = ["/O2", "/std:c11"] if msvc else ["-O3", "-std=c11", "-fno-strict-aliasing"]
        with tempfile.TemporaryDirectory() as tmp:
            omp = None if openmp == "0" else _openmp_flags(compiler, msvc, tmp)
            x86 = _try_compile(compiler, X86_64_PROBE, tmp, "probe_target", base)
        if omp is None and openmp == "1":
            sys.exit("error: CDROPOUT_OPENMP=1 but the C compiler cannot build and link OpenMP code"
                     + (" (macOS: brew install libomp, or set CDROPOUT_LIBOMP_PREFIX)"
                        if sys.platform == "darwin" else ""))
        if omp is None and openmp == "auto":
            _note("the C compiler cannot build OpenMP code; building single-threaded "
                  "(set CDROPOUT_OPENMP=0 to choose this, or =1 to require OpenMP)")
        simd = x86 and not portable and (MSVC_SIMD_KERNELS or not msvc)
        _note(f"OpenMP {'on' if omp else 'off'}; x86-64 target {'yes' if x86 else 'no'}; "
              f"kernels: portable{', avx2, avx512' if simd else ''}")
        # No debug info in the binaries (Python's own CFLAGS ask for -g; it triples the wheel's
        # size) unless the builder's CFLAGS ask for it, as the sanitizer builds do.
        nodebug = [] if msvc or "-g" in shlex.split(os.environ.get("CFLAGS", "")) else ["-g0"]
        for ext in self.extensions:
            ext.extra_compile_args = list(nodebug)
            if ext.name != CORE:  # the compiled Python modules: C11 and -O3 are not theirs
                continue
            ext.extra_compile_args += base + (omp[0] if omp else [])
            ext.extra_link_args = omp[1] if omp else []
            if not simd:
                continue
            ext.define_macros.append(("CD_HAVE_X86_KERNELS", "1"))
            for source, flags in X86_KERNELS.items():
                objs = compiler.compile([source], output_dir=self.build_temp, include_dirs=[SRC],
                                        extra_postargs=nodebug + base + flags["msvc" if msvc else "gcc"])
                ext.extra_objects.extend(objs)
        super().build_extensions()


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
    Extension(f"cdropout.{name}", [f"cdropout/{name}.py"])
    for name in ("_api", "_apply", "_checks", "_record", "_seeding")
]

if _switch("CDROPOUT_COMPILE_PYTHON", "1", ("0", "1")) == "0":
    python_modules = []

setup(ext_modules=[ext, *python_modules], cmdclass={"build_ext": BuildExt})
