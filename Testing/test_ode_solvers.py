"""The translation ODE solvers: order of convergence, direction, step counting, progress and cancel."""
import math

import pytest
import torch

from MedShiftLib.engine.ode_solvers import CancelToken, IntegrationStats, fixed_step_nfe, integrate, time_grid
from MedShiftLib.errors import TranslationCancelled
from MedShiftLib.settings import SCHEDULES, SOLVERS

FIXED = ("euler", "heun", "rk4")
ORDER = {"euler": 1, "heun": 2, "rk4": 4}
STAGES = {"euler": 1, "heun": 2, "rk4": 4}

# dx/dt = -LAM x + sin(OMEGA t), element-wise: time-dependent, so evaluating at wrong times shows.
LAM, OMEGA = 2.0, 5.0


def forced_decay(x, t):
    assert isinstance(t, float)
    return -LAM * x + math.sin(OMEGA * t)


def forced_decay_exact(x0, t0, t1):
    def particular(t):
        return (LAM * math.sin(OMEGA * t) - OMEGA * math.cos(OMEGA * t)) / (LAM ** 2 + OMEGA ** 2)
    return (x0 - particular(t0)) * math.exp(-LAM * (t1 - t0)) + particular(t1)


# dx/dt = A x per pixel on two channels, A a rotation with decay: exp(A s) = e^{-a s} R(w s).
DECAY, SPIN = 0.7, 4.0


def spiral(x, t):
    a, b = x[:, 0:1], x[:, 1:2]
    return torch.cat([-DECAY * a + SPIN * b, -SPIN * a - DECAY * b], dim=1)


def spiral_exact(x0, t0, t1):
    s = t1 - t0
    c, n = math.cos(SPIN * s), math.sin(SPIN * s)
    a, b = x0[:, 0:1], x0[:, 1:2]
    return math.exp(-DECAY * s) * torch.cat([c * a + n * b, -n * a + c * b], dim=1)


def start_image(channels=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, channels, 4, 5, generator=g, dtype=dtype)


class Counting:
    """A velocity that records the times it is called at."""

    def __init__(self, field):
        self.field, self.times = field, []

    def __call__(self, x, t):
        self.times.append(t)
        return self.field(x, t)


def observed_orders(solver, field, exact, x0, t0, t1, steps=(16, 32, 64)):
    errors = [(integrate(field, x0, t0, t1, solver=solver, steps=n) - exact(x0, t0, t1)).abs().max().item()
              for n in steps]
    return [math.log2(e0 / e1) for e0, e1 in zip(errors, errors[1:])]


@pytest.mark.parametrize("solver", FIXED)
@pytest.mark.parametrize("t0, t1", [(0.6, 1.0), (1.0, 0.2)])
def test_fixed_step_solvers_converge_at_their_order_on_a_time_dependent_field(solver, t0, t1):
    x0 = start_image()
    for order in observed_orders(solver, forced_decay, forced_decay_exact, x0, t0, t1):
        assert order == pytest.approx(ORDER[solver], abs=0.15)


@pytest.mark.parametrize("solver", FIXED)
def test_fixed_step_solvers_converge_at_their_order_on_a_rotating_field(solver):
    x0 = start_image(channels=2)
    for order in observed_orders(solver, spiral, spiral_exact, x0, 1.0, 0.3):
        assert order == pytest.approx(ORDER[solver], abs=0.15)


@pytest.mark.parametrize("t0, t1", [(0.6, 1.0), (1.0, 0.2)])
def test_dopri5_matches_the_exact_solution_to_its_tolerance(t0, t1):
    x0 = start_image(channels=2)
    exact = spiral_exact(x0, t0, t1)
    loose = (integrate(spiral, x0, t0, t1, solver="dopri5", rtol=1e-4, atol=1e-4) - exact).abs().max().item()
    tight = (integrate(spiral, x0, t0, t1, solver="dopri5", rtol=1e-8, atol=1e-8) - exact).abs().max().item()
    assert loose < 1e-2
    assert tight < 1e-6
    assert tight < loose / 100


@pytest.mark.parametrize("solver", SOLVERS)
def test_backwards_then_forwards_returns_to_the_start(solver):
    x0 = start_image()
    errors = []
    for steps in (4, 16):
        x_tau = integrate(forced_decay, x0, 1.0, 0.4, solver=solver, steps=steps, rtol=1e-7, atol=1e-7)
        assert (x_tau - x0).abs().max() > 0.1  # it really moved
        back = integrate(forced_decay, x_tau, 0.4, 1.0, solver=solver, steps=steps, rtol=1e-7, atol=1e-7)
        errors.append((back - x0).abs().max().item())
    if solver == "dopri5":
        assert max(errors) < 1e-5
    else:
        assert errors[1] < errors[0] / (4 ** ORDER[solver] / 2)  # 4x the steps: error down ~4^order


@pytest.mark.parametrize("solver", FIXED)
def test_steps_are_counted_over_the_integrated_interval(solver):
    field = Counting(forced_decay)
    stats = IntegrationStats()
    integrate(field, start_image(), 1.0, 0.6, solver=solver, steps=5, stats=stats)
    assert len(field.times) == stats.nfe == fixed_step_nfe(solver, 5) == 5 * STAGES[solver]
    assert stats.steps == 5
    assert field.times[0] == 1.0  # first evaluation at t_start
    assert all(0.6 - 1e-12 <= t <= 1.0 for t in field.times)
    assert min(field.times) == pytest.approx(0.68 if solver == "euler" else 0.6)  # Euler never needs t_end


def test_euler_evaluates_at_the_left_end_of_each_equal_step():
    field = Counting(forced_decay)
    integrate(field, start_image(), 0.6, 1.0, solver="euler", steps=4)
    assert field.times == pytest.approx([0.6, 0.7, 0.8, 0.9])


def test_stats_add_up_over_several_calls_and_dopri5_reports_accepted_steps():
    stats = IntegrationStats()
    field = Counting(spiral)
    x = integrate(field, start_image(channels=2), 1.0, 0.3, solver="dopri5", rtol=1e-6, atol=1e-6, stats=stats)
    assert stats.nfe == len(field.times) > 0
    assert stats.accepted == stats.steps > 0
    assert stats.nfe >= 6 * (stats.accepted + stats.rejected)
    integrate(spiral, x, 0.3, 1.0, solver="rk4", steps=3, stats=stats)
    assert stats.nfe == len(field.times) + 12


@pytest.mark.parametrize("solver", SOLVERS)
def test_progress_counts_up_to_the_total(solver):
    calls = []
    integrate(spiral, start_image(channels=2), 1.0, 0.6, solver=solver, steps=6,
              progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (6, 6)
    assert all(total == 6 for _, total in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(set(done)) == len(done) and done[0] >= 1
    if solver == "dopri5":
        assert len(done) >= 3  # reported as its accepted steps cover the interval, not only at the end
    else:
        assert done == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("solver", FIXED)
def test_cancel_from_the_progress_callback_stops_within_one_step(solver):
    token = CancelToken()
    field = Counting(forced_decay)

    def progress(done, total):
        if done == 2:
            token.cancel()

    with pytest.raises(TranslationCancelled, match="cancelled by the user"):
        integrate(field, start_image(), 1.0, 0.6, solver=solver, steps=8, progress=progress, cancel=token)
    assert token.cancelled
    assert 2 * STAGES[solver] <= len(field.times) <= 3 * STAGES[solver]


def test_cancel_stops_dopri5_between_evaluations():
    token = CancelToken()
    field = Counting(spiral)

    def cancelling(x, t):
        if len(field.times) == 5:
            token.cancel()
        return spiral(x, t)

    field.field = cancelling
    with pytest.raises(TranslationCancelled):
        integrate(field, start_image(channels=2), 1.0, 0.3, solver="dopri5", rtol=1e-6, atol=1e-6, cancel=token)
    assert len(field.times) == 5


def test_a_token_cancelled_before_the_start_evaluates_nothing():
    token = CancelToken()
    assert not token.cancelled
    token.cancel()
    field = Counting(forced_decay)
    for solver in SOLVERS:
        with pytest.raises(TranslationCancelled):
            integrate(field, start_image(), 1.0, 0.6, solver=solver, cancel=token)
    assert field.times == []


@pytest.mark.parametrize("solver", SOLVERS)
def test_equal_start_and_end_is_the_identity(solver):
    x0 = start_image()
    field = Counting(forced_decay)
    assert integrate(field, x0, 0.7, 0.7, solver=solver) is x0
    assert field.times == []


@pytest.mark.parametrize("solver", SOLVERS)
def test_dtype_and_device_are_kept_even_under_inference_mode(solver):
    x0 = start_image(dtype=torch.float32)
    with torch.inference_mode():
        y = integrate(lambda x, t: forced_decay(x, t).double(), x0, 1.0, 0.5, solver=solver, steps=3)
    assert y.dtype == torch.float32 and y.device == x0.device and y.shape == x0.shape
    in_double = integrate(forced_decay, x0.double(), 1.0, 0.5, solver=solver, steps=3)
    assert torch.allclose(y.double(), in_double, rtol=1e-4, atol=1e-4)


def test_same_input_gives_the_same_output():
    x0 = start_image()
    for solver in SOLVERS:
        assert torch.equal(integrate(forced_decay, x0, 1.0, 0.5, solver=solver),
                           integrate(forced_decay, x0.clone(), 1.0, 0.5, solver=solver))


def test_unknown_solver_or_bad_steps_are_refused_with_the_valid_choices():
    with pytest.raises(ValueError) as err:
        integrate(forced_decay, start_image(), 1.0, 0.6, solver="midpoint")
    assert all(name in str(err.value) for name in SOLVERS)
    with pytest.raises(ValueError, match="steps"):
        integrate(forced_decay, start_image(), 1.0, 0.6, solver="euler", steps=0)
    with pytest.raises(ValueError):
        fixed_step_nfe("dopri5", 4)
    assert [fixed_step_nfe(s, 3) for s in FIXED] == [3, 6, 12]


def test_quadratic_schedule_refines_towards_t1_in_both_directions():
    field = Counting(forced_decay)
    integrate(field, start_image(), 0.6, 1.0, solver="euler", steps=4, schedule="quadratic")
    assert field.times == pytest.approx([0.6, 0.775, 0.9, 0.975])  # 1 - 0.4 (1 - k/4)^2
    forward = time_grid(0.6, 1.0, 8, "quadratic")
    steps = [b - a for a, b in zip(forward, forward[1:])]
    assert forward[0] == 0.6 and forward[-1] == 1.0 and all(a > b > 0 for a, b in zip(steps, steps[1:]))
    assert time_grid(1.0, 0.6, 8, "quadratic") == forward[::-1]
    assert time_grid(0.6, 1.0, 4) == pytest.approx([0.6, 0.7, 0.8, 0.9, 1.0])


@pytest.mark.parametrize("solver", FIXED)
def test_quadratic_schedule_converges_to_the_same_solution(solver):
    x0 = start_image()
    exact = forced_decay_exact(x0, 0.3, 1.0)
    errors = [(integrate(forced_decay, x0, 0.3, 1.0, solver=solver, steps=n, schedule="quadratic") - exact).abs().max()
              for n in (16, 64)]
    assert errors[1] < errors[0] / 3.5 and errors[1] < 0.05  # at least first order


def test_unknown_schedule_and_dopri5_with_a_schedule_are_refused():
    with pytest.raises(ValueError) as err:
        integrate(forced_decay, start_image(), 1.0, 0.6, schedule="cosine")
    assert all(name in str(err.value) for name in SCHEDULES)
    with pytest.raises(ValueError, match="dopri5 chooses its own steps"):
        integrate(forced_decay, start_image(), 1.0, 0.6, solver="dopri5", schedule="quadratic")
