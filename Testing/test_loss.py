"""The flow-matching loss: one objective for training and validation, its draws in a fixed order."""
import pytest
import torch

from MedShiftLib.engine.couplings import make_coupling
from MedShiftLib.engine.loss import FlowMatchingLoss


class Recorder(torch.nn.Module):
    """A 'network' that returns a fixed velocity and remembers the labels it was given."""

    def __init__(self, value: float = 0.0):
        super().__init__()
        self.value, self.labels = value, []

    def forward(self, x, t, labels):
        self.labels.append(labels.clone())
        return torch.full_like(x, self.value)


def test_loss_is_the_mean_squared_error_to_the_couplings_target():
    x1 = torch.randn(4, 1, 8, 8)
    coupling = make_coupling("independent")
    target = coupling.sample(x1, generator=torch.Generator().manual_seed(3)).u_t
    loss = FlowMatchingLoss(coupling, null_label=2, label_dropout=0.0)
    value = loss(Recorder(0.5), x1, torch.zeros(4, dtype=torch.long), torch.Generator().manual_seed(3))
    assert torch.allclose(value, ((0.5 - target) ** 2).mean())


def test_labels_are_dropped_to_null_in_training_and_kept_in_validation():
    x1, labels = torch.randn(64, 1, 8, 8), torch.ones(64, dtype=torch.long)
    loss = FlowMatchingLoss(make_coupling("independent"), null_label=5, label_dropout=0.5)
    net = Recorder()
    loss(net, x1, labels, torch.Generator().manual_seed(0))
    dropped = int((net.labels[-1] == 5).sum())
    assert 16 < dropped < 48 and set(net.labels[-1].tolist()) == {1, 5}
    loss(net, x1, labels, torch.Generator().manual_seed(0), drop=False)
    assert torch.equal(net.labels[-1], labels)


def test_the_noise_and_times_do_not_depend_on_label_dropout():
    """Dropout draws after the coupling, so validation (no dropout) sees the noise training would."""
    x1, labels = torch.randn(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)
    with_dropout = FlowMatchingLoss(make_coupling("ot"), null_label=1, label_dropout=0.9)
    without = FlowMatchingLoss(make_coupling("ot"), null_label=1, label_dropout=0.0)
    a = with_dropout(Recorder(0.1), x1, labels, torch.Generator().manual_seed(7))
    b = without(Recorder(0.1), x1, labels, torch.Generator().manual_seed(7), drop=False)
    assert torch.equal(a, b)


def test_a_label_dropout_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="probability"):
        FlowMatchingLoss(make_coupling("independent"), null_label=1, label_dropout=1.5)
