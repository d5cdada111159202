"""Unrolled inner loops for the fused graph: the one place where pure-Python speed is bought.

On CPython a `for a, b in zip(xs, ys): acc += a * b` loop spends most of its time running the
loop itself (the iterator, the tuple unpacking, loading and storing `acc`), not multiplying.
Writing the same operations out as one straight expression,

    a0, a1, a2 = a; b0, b1, b2 = b; return 0 + a0*b0 + a1*b1 + a2*b2

does the *same float operations in the same order* (Python adds left to right, starting here
from 0 like the seed's sum()), about twice as fast. So, for each length n the model needs,
we write that function's source once, compile it, and cache it. The backward pass gets the
same treatment for "child.grad += local_grad * g" over a node's children.

Past MAX_UNROLL elements the plain loops are used (a huge function would not pay). On PyPy
the plain loops are always used: its JIT compiles them to machine code itself, while
straight-line functions with hundreds of locals defeat it (measured: ~6x slower training).
"""

import platform

MAX_UNROLL = 0 if platform.python_implementation() == "PyPy" else 256

_dot_cache = {}
_accumulate_cache = {}


def _loop_dot(a, b):
    acc = 0
    for x, y in zip(a, b):
        acc += x * y
    return acc


def _loop_accumulate(children, local_grads, g):
    for child, local_grad in zip(children, local_grads):
        child.grad += local_grad * g


def _compile(name, src):
    namespace = {}
    exec(compile(src, f"<unrolled {name}>", "exec"), namespace)
    return namespace[name]


def _unrolled(cache, loop, n, source):
    """The length-n function made from source(n), put in `cache` (the plain loop when n is 0 or
    too long to unroll)."""
    fn = cache[n] = loop if n > MAX_UNROLL or n == 0 else _compile(*source(n))
    return fn


def _dot_source(n):
    a = ", ".join(f"a{i}" for i in range(n))
    b = ", ".join(f"b{i}" for i in range(n))
    terms = " + ".join(f"a{i} * b{i}" for i in range(n))
    return "dot", f"def dot(a, b):\n    {a}, = a\n    {b}, = b\n    return 0 + {terms}\n"


def _accumulate_source(n):
    c = ", ".join(f"c{i}" for i in range(n))
    lg = ", ".join(f"l{i}" for i in range(n))
    body = "".join(f"    c{i}.grad += l{i} * g\n" for i in range(n))
    return "accumulate", f"def accumulate(c, l, g):\n    {c}, = c\n    {lg}, = l\n{body}"


# (these two run for every node of every step: the cache hit stays one dict lookup)

def dot_fn(n):
    """A function (a, b) -> sum_i a[i] * b[i] for length-n lists, summed left to right from 0."""
    return _dot_cache.get(n) or _unrolled(_dot_cache, _loop_dot, n, _dot_source)


def accumulate_fn(n):
    """A function (children, local_grads, g) doing child.grad += local_grad * g for n children."""
    return _accumulate_cache.get(n) or _unrolled(_accumulate_cache, _loop_accumulate, n, _accumulate_source)
