"""``DistributedOptimizer`` alone: exactly the wrapped optimizer's step."""
import numpy as np
import pytest

from dtnn.data import load_synthetic
from dtnn.layers.loss import SoftmaxCrossEntropy
from dtnn.models import build_model
from dtnn.optim import SGD
from dtnn.optim.schedules import build_schedule
from dtnn.parallel import DistributedOptimizer, SerialContext


# pinned convolutions: two models are compared bit for bit, and bestof's choices while
# it tunes follow the clock
PINNED = dict(filters=2, hidden=8, seed=3, conv_algorithm="im2col")


def _setup():
    train, _ = load_synthetic(shape=(1, 8, 8), classes=3, n_train=64, n_test=0)
    model = build_model("simplecnn", (1, 8, 8), 3, **PINNED)
    return train, model


def test_step_is_the_plain_optimizer_step_bit_for_bit():
    train, model = _setup()
    ref = build_model("simplecnn", (1, 8, 8), 3, **PINNED)
    opt = DistributedOptimizer(SGD(model, lr=0.1, momentum=0.9, nesterov=True),
                               ctx=SerialContext(), compress="topk:ratio=0.1")
    assert opt.exchange is None
    ref_opt = SGD(ref.flat_params, ref.flat_grads, ref.decay_mask, lr=0.1, momentum=0.9,
                  nesterov=True)
    loss_fn = SoftmaxCrossEntropy()
    for i in range(0, 64, 16):
        x, y = train.x[i:i + 16], train.y[i:i + 16]
        loss = opt.step(model, x, y)
        ref_loss = loss_fn.forward(ref.forward(x, training=True), y)
        ref.backward(loss_fn.backward())
        ref_opt.step()
        assert loss == ref_loss
    assert np.array_equal(model.flat_params, ref.flat_params)


def test_manual_backward_then_step_equals_step_with_data():
    train, a = _setup()
    _, b = _setup()
    oa = DistributedOptimizer(SGD(a, lr=0.1, momentum=0.9), ctx=SerialContext())
    ob = DistributedOptimizer(SGD(b, lr=0.1, momentum=0.9), ctx=SerialContext())
    loss_fn = SoftmaxCrossEntropy()
    for i in range(0, 64, 16):
        x, y = train.x[i:i + 16], train.y[i:i + 16]
        oa.step(a, x, y)
        loss_fn.forward(b.forward(x, training=True), y)
        b.backward(loss_fn.backward())
        ob.step()
    assert np.array_equal(a.flat_params, b.flat_params)


def test_schedule_and_state_dict():
    train, model = _setup()
    sched = build_schedule("step", 0.1, 1, 10, step_size=2, gamma=0.5)
    opt = DistributedOptimizer(SGD(model, lr=0.1, momentum=0.9), ctx=SerialContext(),
                               schedule=sched)
    for i in range(3):
        opt.step(model, train.x[:8], train.y[:8])
    assert opt.lr == pytest.approx(0.05)   # set for step 2 (epoch 2)
    state = opt.state_dict()
    assert state["optimizer"]["steps"] == 3 and "compressor" not in state
    _, other = _setup()
    again = DistributedOptimizer(SGD(other, lr=0.1, momentum=0.9), ctx=SerialContext())
    again.load_state_dict(state)
    assert np.array_equal(again.optimizer.momentum_buffer, opt.optimizer.momentum_buffer)


def test_misuse_is_explained():
    _, model = _setup()
    with pytest.raises(TypeError, match="model="):
        DistributedOptimizer(SGD(model.flat_params, model.flat_grads, model.decay_mask, lr=0.1),
                             ctx=SerialContext())
    _, other = _setup()
    opt = DistributedOptimizer(SGD(model, lr=0.1), ctx=SerialContext())
    with pytest.raises(ValueError, match="not the one"):
        opt.step(other, np.zeros((2, 1, 8, 8), np.float32), np.zeros(2, np.int64))
