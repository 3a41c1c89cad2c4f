"""Alpha dropout's constants (a, b, c): the correctly rounded values of docs/variants.md's expressions.

The reference is independent of the library's exact-integer computation: Python's decimal module
at 80 digits (tests/reference.py), rounded once to float64 by CPython's correctly rounded
str -> float conversion. A second check evaluates the expressions as written in docs/variants.md,
so the page and the code cannot drift apart.
"""
import decimal
import math
import pathlib
import re

import numpy as np
import pytest

import cdropout
import reference
from cdropout._alpha_constants import ALPHA_PRIME, alpha_coefficients

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "variants.md"


def _sample_ps(n, seed):
    """n probabilities: uniform doubles in [0, 1), log-uniform tiny ones, and ones close to 1."""
    rng = np.random.default_rng(seed)
    k = n // 4
    ps = list(rng.random(n - 2 * k))
    ps += list(10.0 ** rng.uniform(-320, -1, k))                  # down to subnormal p
    ps += list(1.0 - 10.0 ** rng.uniform(-15.9, -1, k))           # close to 1
    edges = [0.0, 5e-324, 2.2250738585072014e-308, 2**-53, 1e-17, 0.1, 1 / 3, 0.5, 0.75,
             math.nextafter(0.5, 0), math.nextafter(0.5, 1), 1 - 2**-53, 1 - 2**-52, 0.999]
    return [float(p) for p in ps + edges if p < 1.0]


def _rounding_is_stable(v):
    """The reference is within ~1e-78 relative of the exact value: it decides the rounding
    unless the exact value lies closer than that to a midpoint between two doubles."""
    with decimal.localcontext() as ctx:
        ctx.prec = reference.ALPHA_DIGITS + 10
        eps = decimal.Decimal(10) ** (-(reference.ALPHA_DIGITS - 5))
        return (reference.nearest_double(v * (1 + eps)) == reference.nearest_double(v * (1 - eps)))


def _same(x, y):
    return x == y and math.copysign(1.0, x) == math.copysign(1.0, y)


@pytest.mark.parametrize("seed", [0, 1])
def test_constants_are_the_correctly_rounded_reference(seed):
    bad = []
    for p in _sample_ps(10_000, seed):
        ref = reference.alpha_constants_decimal(p)
        got = alpha_coefficients(p)
        for name, v, g in zip("abc", ref, got):
            assert _rounding_is_stable(v), f"p={p!r}: {name} too close to a midpoint for the reference"
            if not _same(g, reference.nearest_double(v)):
                bad.append((p.hex(), name, g.hex(), reference.nearest_double(v).hex()))
    assert not bad, f"{len(bad)} constants are not correctly rounded, e.g. {bad[:5]}"


def _doc_expressions():
    """The lines `a = ...`, `b = ...`, `c = ...` of the alpha dropout section of docs/variants.md."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Alpha dropout"):]
    section = section[:section.index("\n## ", 3)]
    exprs = {}
    for line in section.splitlines():
        m = re.fullmatch(r"    ([abc]) = (.+)", line)
        if m:
            assert m.group(1) not in exprs, f"two expressions for {m.group(1)} in the page"
            exprs[m.group(1)] = m.group(2)
    assert sorted(exprs) == ["a", "b", "c"], exprs
    return exprs


def _eval_doc(exprs, p, digits=reference.ALPHA_DIGITS):
    """Evaluate the page's expressions in Decimal arithmetic (numbers become exact Decimals)."""
    D = decimal.Decimal
    env = {"D": D, "p": D(p), "A": D(ALPHA_PRIME)}
    with decimal.localcontext() as ctx:
        ctx.prec = digits
        for name in "abc":
            src = exprs[name].replace("alpha'", "A")
            assert re.fullmatch(r"[-+*/() .0-9abcpA]+", src), src   # only arithmetic on names
            src = re.sub(r"\d+(\.\d+)?", lambda m: f"D('{m.group()}')", src)
            env[name] = +eval(src, {"__builtins__": {}}, env)
    return env["a"], env["b"], env["c"]


def test_docs_state_the_expression_the_code_rounds():
    exprs = _doc_expressions()
    assert "alpha'**2" in exprs["a"] and "** -0.5" in exprs["a"], exprs  # the page's form
    bad = []
    for p in _sample_ps(2_000, 2):
        got = alpha_coefficients(p)
        for name, v, g in zip("abc", _eval_doc(exprs, p), got):
            if not _same(g, reference.nearest_double(v)):
                bad.append((p, name))
    assert not bad, f"docs/variants.md and the code differ for {len(bad)} constants: {bad[:5]}"
    # the page's worked example
    text = DOC.read_text(encoding="utf-8")
    a, b, c = alpha_coefficients(0.5)
    assert f"`a = {a.hex()}`" in text and f"`b = {b.hex()}`" in text and f"`c = {c.hex()}`" in text


def test_special_values():
    assert alpha_coefficients(0.0) == (1.0, 0.0, ALPHA_PRIME)
    assert ALPHA_PRIME.hex() == "-0x1.c212cc640f030p+0"
    # alpha' = -lambda * alpha of SELU
    assert math.isclose(ALPHA_PRIME, -1.0507009873554805 * 1.6732632423543772, rel_tol=1e-15)
    a, b, c = alpha_coefficients(5e-324)      # b is subnormal: 1.7581 * 2**-1074 -> 2 * 2**-1074
    assert (a, b, c) == (1.0, 1e-323, ALPHA_PRIME)
    for p in (1.0, 1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="p in"):
            alpha_coefficients(p)


def test_the_float64_formula_of_0_1_0_was_not_correctly_rounded():
    """The check above has teeth: c = a*alpha' + b step by step in float64 (the old rule, no libm
    involved) is off for p near 1, where a*alpha' and b cancel."""
    off = 0
    for p in _sample_ps(400, 3):
        a = reference.alpha_constants(p)[0]
        b = -a * ALPHA_PRIME * p
        if a * ALPHA_PRIME + b != reference.alpha_constants(p)[2]:
            off += 1
    assert off > 10


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("p", [0.3, 1 - 2**-20, 0.999999, 1 - 1e-12])
def test_alpha_dropout_uses_the_constants(dtype, p):
    """Kept zeros become exactly b, dropped elements c, the gradient of a kept element a."""
    a, b, c = reference.alpha_constants(p)
    x = np.zeros(4096, dtype)
    y, keep = cdropout.alpha_dropout(x, p, seed=5, stream=1, return_mask="bool")
    np.testing.assert_array_equal(keep, reference.keep_mask(x.shape, p, 5, 1))
    assert keep.any() or p > 0.99, "no kept element to check"
    assert np.all(y[keep] == dtype(b)) and np.all(y[~keep] == dtype(c))
    g = cdropout.alpha_dropout_backward(np.ones(4096, dtype), keep, p=p)
    assert np.all(g[keep] == dtype(a)) and np.all(g[~keep] == 0)
