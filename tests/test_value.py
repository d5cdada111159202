"""Every Value op's local derivative against finite differences; backward without recursion."""

import math
import sys

import pytest

from microgpt.reference import Value

H = 1e-6

UNARY = {
    "log": (lambda x: x.log(), lambda x: math.log(x)),
    "exp": (lambda x: x.exp(), lambda x: math.exp(x)),
    "relu": (lambda x: x.relu(), lambda x: max(0.0, x)),
    "neg": (lambda x: -x, lambda x: -x),
    "pow2": (lambda x: x ** 2, lambda x: x ** 2),
    "pow-0.5": (lambda x: x ** -0.5, lambda x: x ** -0.5),
    "radd": (lambda x: 3.0 + x, lambda x: 3.0 + x),
    "rsub": (lambda x: 3.0 - x, lambda x: 3.0 - x),
    "rmul": (lambda x: 3.0 * x, lambda x: 3.0 * x),
    "rtruediv": (lambda x: 3.0 / x, lambda x: 3.0 / x),
}
BINARY = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "truediv": (lambda a, b: a / b, lambda a, b: a / b),
}


@pytest.mark.parametrize("name", list(UNARY))
@pytest.mark.parametrize("x0", [0.7, 1.9, -0.4])
def test_unary_op_gradient(name, x0):
    if name in ("log", "pow-0.5") and x0 <= 0:
        pytest.skip("outside the domain")
    vf, ff = UNARY[name]
    x = Value(x0)
    y = vf(x)
    y.backward()
    assert y.data == pytest.approx(ff(x0), rel=1e-12)
    numeric = (ff(x0 + H) - ff(x0 - H)) / (2 * H)
    assert x.grad == pytest.approx(numeric, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("name", list(BINARY))
def test_binary_op_gradient(name):
    vf, ff = BINARY[name]
    a0, b0 = 1.3, -0.6
    a, b = Value(a0), Value(b0)
    y = vf(a, b)
    y.backward()
    assert y.data == pytest.approx(ff(a0, b0), rel=1e-12)
    assert a.grad == pytest.approx((ff(a0 + H, b0) - ff(a0 - H, b0)) / (2 * H), rel=1e-6)
    assert b.grad == pytest.approx((ff(a0, b0 + H) - ff(a0, b0 - H)) / (2 * H), rel=1e-6)


def test_shared_node_accumulates_gradient():
    x = Value(2.0)
    y = x * x + x  # x reached by three paths
    y.backward()
    assert x.grad == 5.0


def test_relu_gradient_is_zero_below_zero():
    x = Value(-1.0)
    x.relu().backward()
    assert x.grad == 0.0


def test_backward_of_a_deep_graph_needs_no_recursion():
    depth = 5 * sys.getrecursionlimit()
    x = Value(1.0)
    y = x
    for _ in range(depth):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad == 1.0


def test_topological_order_visits_children_first():
    a, b = Value(1.0), Value(2.0)
    c = a * b
    d = c + a
    order = d.topo_order()
    assert order.index(a) < order.index(c) < order.index(d)
    assert order.index(b) < order.index(c)
    assert len(order) == 4
