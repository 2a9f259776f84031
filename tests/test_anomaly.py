"""Anomaly detection (PyTorch's wording plus the forward traceback ending at the user's line),
the `where` trap explained, thread-local anomaly mode, and `check_finite` naming the parameter."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

import retrograd as rg
from retrograd import nn, optim
from retrograd.autograd import Function, detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from retrograd.autograd.anomaly import format_forward_trace, is_anomaly_check_nan_enabled
from retrograd.data import DataLoader, TensorDataset
from retrograd.nn import functional as F
from retrograd.train import NonFiniteError, Trainer
from retrograd.train.finite import check_finite, describe_nonfinite, find_nonfinite

THIS_FILE = __file__.rsplit("/", 1)[-1]


def _last_frame(message: str) -> str:
    lines = [ln for ln in message.splitlines() if ln.strip().startswith("File ")]
    return lines[-1]


def test_nan_input_raises_with_pytorch_wording_and_the_users_line():
    x = rg.tensor([1.0, math.nan], requires_grad=True)
    with detect_anomaly():
        y = rg.log(x)  # the marked line
        with pytest.raises(RuntimeError) as info:
            y.sum().backward(rg.tensor(1.0))
    message = str(info.value)
    assert message.startswith("Function 'LogBackward' returned nan values in its 0th output.")
    assert "Traceback of the forward call that caused the error:" in message
    last = _last_frame(message)
    assert THIS_FILE in last and "retrograd/" not in last.split(THIS_FILE)[0][-30:]
    assert "y = rg.log(x)  # the marked line" in message
    # retrograd's own frames are trimmed from the end of the trace
    trace = message.split("caused the error:\n", 1)[1]
    frames = [ln for ln in trace.splitlines() if ln.strip().startswith("File ")]
    assert "/retrograd/" not in frames[-1]


def test_inf_values_are_reported_and_the_hint_names_the_domain():
    x = rg.tensor([0.0, 4.0], requires_grad=True)
    with detect_anomaly():
        y = rg.sqrt(x)
        with pytest.raises(RuntimeError, match=r"Function 'SqrtBackward' returned inf values"):
            y.sum().backward()


def test_where_trap_is_explained_with_the_safe_pattern():
    x = rg.tensor([-1.0, 0.0, 4.0], requires_grad=True)
    with detect_anomaly():
        y = rg.where(x > 0, rg.sqrt(x), 0.0)
        with pytest.raises(RuntimeError) as info:
            y.sum().backward()
    message = str(info.value)
    assert message.startswith("Function 'SqrtBackward' returned nan values in its 0th output.")
    assert "the branch that `where` did not select" in message
    assert "2 of 3 elements" in message
    assert "WhereBackward, created at " + THIS_FILE in message
    assert "where(x > 0, sqrt(where(x > 0, x, 1)), 0)" in message
    # the safe pattern the message recommends gives finite, correct gradients
    x.grad = None
    with detect_anomaly():
        safe = rg.where(x > 0, rg.sqrt(rg.where(x > 0, x, 1.0)), 0.0)
        safe.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.0, 0.25])


def test_where_trap_through_intermediate_ops_and_the_other_branch():
    x = rg.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    with detect_anomaly():
        y = rg.where(x <= 0, 1.0, rg.log(x) * 2 + 1)
        with pytest.raises(RuntimeError) as info:
            y.sum().backward()
    message = str(info.value)
    assert "Function 'LogBackward' returned nan values" in message
    assert "feeds other of where" in message and "condition is True" in message
    assert "through 2 op(s) in between" in message


def test_zero_gradient_from_another_mask_gets_the_generic_hint():
    x = rg.tensor([-1.0, 2.0, 4.0], requires_grad=True)
    with detect_anomaly():
        y = rg.sqrt(x)[1:]
        with pytest.raises(RuntimeError) as info:
            y.sum().backward()
    message = str(info.value)
    assert "exactly zero at 1 of 3 elements" in message and "0 * inf = nan" in message
    assert "did not select" not in message


def test_a_non_finite_incoming_gradient_is_blamed_on_its_source():
    x = rg.tensor([1.0, 2.0], requires_grad=True)
    with detect_anomaly():
        y = rg.exp(x)
        with pytest.raises(RuntimeError, match="already not finite"):
            y.backward(rg.tensor([math.nan, 1.0]))


def test_user_function_rule_returning_nan_is_caught():
    class Bad(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * math.nan

    x = rg.tensor([1.0, 2.0], requires_grad=True)
    with detect_anomaly():
        y = Bad.apply(x)
        with pytest.raises(RuntimeError, match=r"Function 'BadBackward' returned nan values"):
            y.sum().backward()


def test_create_graph_backward_is_checked_too():
    x = rg.tensor([-1.0, 4.0], requires_grad=True)
    with detect_anomaly():
        y = rg.where(x > 0, rg.sqrt(x), 0.0).sum()
        with pytest.raises(RuntimeError, match="SqrtBackward' returned nan"):
            rg.autograd.grad(y, x, create_graph=True)


def test_healthy_backward_is_unchanged_and_forward_outside_anomaly_has_no_trace():
    x = rg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (rg.log(x) * x).sum().backward()
    expected = x.grad.numpy().copy()
    x.grad = None
    with detect_anomaly():
        y = (rg.log(x) * x).sum()
        assert format_forward_trace(y.grad_fn).rstrip().endswith("y = (rg.log(x) * x).sum()")
        y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), expected)
    # the forward ran outside anomaly mode: the error still names the node and says why no trace
    z = rg.log(rg.tensor([math.nan], requires_grad=True))
    with detect_anomaly(), pytest.raises(RuntimeError, match="outside anomaly mode"):
        z.sum().backward()


def test_check_nan_false_records_traces_without_raising():
    x = rg.tensor([-1.0], requires_grad=True)
    with detect_anomaly(check_nan=False):
        assert is_anomaly_enabled() and not is_anomaly_check_nan_enabled()
        y = rg.sqrt(x)
        assert format_forward_trace(y.grad_fn)
        y.sum().backward()
    assert math.isnan(x.grad.item())


def test_set_detect_anomaly_switches_at_once_and_restores_as_a_context():
    assert not is_anomaly_enabled()
    set_detect_anomaly(True)
    try:
        assert is_anomaly_enabled() and is_anomaly_check_nan_enabled()
        with set_detect_anomaly(False):
            assert not is_anomaly_enabled()
        assert is_anomaly_enabled()
    finally:
        set_detect_anomaly(False)
    assert not is_anomaly_enabled()

    @detect_anomaly()
    def decorated():
        return is_anomaly_enabled()

    assert decorated() and not is_anomaly_enabled()


def test_anomaly_mode_is_thread_local():
    seen = {}
    ready, release = threading.Event(), threading.Event()

    def other():
        seen["before"] = is_anomaly_enabled()
        ready.set()
        release.wait(5)
        seen["while_main_on"] = is_anomaly_enabled()
        x = rg.tensor([-1.0], requires_grad=True)
        rg.sqrt(x).sum().backward()  # no anomaly mode here: no error, a nan gradient
        seen["grad"] = x.grad.item()
        with detect_anomaly():
            seen["inside"] = is_anomaly_enabled()

    with detect_anomaly():
        t = threading.Thread(target=other)
        t.start()
        ready.wait(5)
        release.set()
        t.join(5)
        assert is_anomaly_enabled()  # the other thread's context did not switch ours off
    assert seen["before"] is False and seen["while_main_on"] is False
    assert math.isnan(seen["grad"]) and seen["inside"] is True
    assert not is_anomaly_enabled()


# -- check_finite ---------------------------------------------------------------------------------
def _model():
    rg.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))


def test_check_finite_passes_a_healthy_model_and_names_a_bad_gradient():
    model = _model()
    x, y = rg.randn(5, 3), rg.tensor([0, 1, 0, 1, 1])
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    check_finite(model, loss)
    assert find_nonfinite(model, loss) is None
    model[2].weight.grad.data[1, 3] = math.inf
    with pytest.raises(NonFiniteError) as info:
        check_finite(model, loss)
    assert str(info.value) == (
        "gradient of parameter '2.weight' is not finite: 1 inf value of 8 (first at index (1, 3))"
    )
    check_finite(model, loss, grads=False)


def test_check_finite_names_the_first_bad_parameter_value_before_the_loss():
    model = _model()
    with rg.no_grad():
        model[2].bias.data[0] = math.nan
    loss = F.cross_entropy(model(rg.randn(2, 3)), rg.tensor([0, 1]))
    with pytest.raises(NonFiniteError, match=r"parameter '2\.bias' is not finite: 1 nan"):
        check_finite(model, loss)
    with pytest.raises(NonFiniteError, match="^loss is nan$"):
        check_finite(model, loss, values=False)


def test_check_finite_names_a_buffer_and_a_float_loss():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    model[1].running_var.data[0] = math.inf
    with pytest.raises(NonFiniteError, match=r"buffer '1\.running_var' is not finite"):
        check_finite(model)
    with pytest.raises(NonFiniteError, match="^loss is inf$"):
        check_finite(nn.Linear(1, 1), math.inf)
    assert describe_nonfinite(np.array([1, 2])) is None  # integers are always finite
    assert describe_nonfinite(np.array([[1.0, np.nan], [np.inf, np.nan]])) == (
        "2 nan and 1 inf values of 4 (first at index (0, 1))"
    )


def test_trainer_stops_at_a_non_finite_gradient_and_names_the_parameter():
    model = _model()
    hooked = model[0].bias
    hooked.register_hook(lambda g: g * math.nan)  # the loss stays finite, this gradient does not
    data = TensorDataset(rg.randn(8, 3), rg.tensor([0, 1] * 4))
    trainer = Trainer(model, optim.SGD(model.parameters(), lr=0.1), F.cross_entropy)
    before = [p.data.copy() for p in model.parameters()]
    with pytest.raises(NonFiniteError, match=r"gradient of parameter '0\.bias' is not finite"):
        trainer.fit(DataLoader(data, batch_size=4), epochs=1)
    for b, p in zip(before, model.parameters()):  # stopped before the optimizer step
        np.testing.assert_array_equal(b, p.data)
