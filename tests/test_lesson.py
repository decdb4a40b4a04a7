"""Issue 13's candidate task (``lunarlander-tight``: the lander with a tight pilot) and the
demo's one-sentence lesson, computed from the run's own curves."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from protege import tasks
from protege.configs.demos import LunarDemoConfig
from protege.demos.lunarlander import Curve
from protege.demos.lunarlander_report import labels_summary, lesson
from protege.experts.classic import LunarLanderExpert
from protege.rollout.evaluate import evaluate_expert

TIGHT = tasks.make("lunarlander-tight")


def test_the_tight_lander_is_the_calm_one_with_another_pilot() -> None:
    assert LunarDemoConfig(task="lunarlander-tight").task == "lunarlander-tight"
    calm = tasks.make("lunarlander")
    assert TIGHT.env_kwargs == calm.env_kwargs and TIGHT.horizon == calm.horizon
    assert TIGHT.risk is calm.risk  # HG-DAgger's supervisor keeps the same safe set


def test_the_tight_pilot_fires_where_the_calm_one_coasts() -> None:
    rng = np.random.default_rng(0)
    obs = rng.normal(0.0, 0.3, size=(2000, 8)).astype(np.float32)
    obs[:, 6:] = 0.0
    tight, calm = TIGHT.make_expert().act(obs), LunarLanderExpert().act(obs)
    differ = tight != calm
    assert 0.01 < differ.mean() < 0.2
    assert (calm[differ] == 0).all()  # only inside the calm pilot's dead band, where it coasts


def test_the_tight_lander_is_seeded() -> None:
    a = evaluate_expert(TIGHT, episodes=2, n_envs=2, seed=5)
    b = evaluate_expert(TIGHT, episodes=2, n_envs=2, seed=5)
    np.testing.assert_array_equal(a.returns, b.returns)
    assert (a.returns >= 200).all()


def _run(bc: list[tuple[int, float]], final_bc: tuple[int, float], **methods) -> SimpleNamespace:
    def ev(r: float) -> SimpleNamespace:
        return SimpleNamespace(evaluation=SimpleNamespace(mean_return=r, std_return=1.0))

    curves = {"BC": Curve([n for n, _ in bc], [r for _, r in bc], [1.0] * len(bc))}
    for name, points in methods.items():
        curves[name] = Curve([n for n, _ in points], [r for _, r in points], [1.0] * len(points))
    return SimpleNamespace(
        methods={"expert": ev(200.0), "BC": ev(final_bc[1])},
        curves=curves,
        labels={"BC": final_bc[0]},
    )


def test_the_lesson_states_the_measured_numbers() -> None:
    # target: 95% of 200 = 190
    run = _run(
        [(300, 50.0), (600, 150.0), (1200, 185.0), (2400, 195.0)],
        (30_000, 199.0),
        HG=[(300, 50.0), (500, 192.0)],
        DAgger=[(300, 50.0), (900, 191.0)],
    )
    text = lesson(run)
    assert text.startswith("HG reached 95% of the expert's return with 500 expert labels")
    assert "BC on demonstrations needed more than 1,200 and at most 2,400 (2.4–4.8×" in text
    assert "with at most 500 labels of demonstrations BC scored 50.0 at best" in text
    assert "Reaching 95% of the expert's return (190.0)" in labels_summary(run)
    assert "BC at 2,400 labels" in labels_summary(run)
    # BC reached only with every demonstration
    run = _run([(300, 50.0), (600, 150.0)], (30_000, 195.0), HG=[(300, 50.0), (500, 192.0)])
    assert "needed more than 600 and at most 30,000 (1.2–60.0× as many; its curve" in lesson(run)
    run = _run([], (30_000, 195.0), HG=[(300, 50.0), (500, 192.0)])  # BC only at the end
    assert "BC on demonstrations needed 30,000 (60.0× as many)" in lesson(run)
    # BC never reached
    run = _run([(300, 50.0)], (30_000, 100.0), HG=[(300, 50.0), (500, 192.0)])
    assert "did not reach it with up to 30,000 (60.0× as many)" in lesson(run)
    # BC first: the sentence says the lesson did not show
    run = _run([(300, 195.0)], (30_000, 199.0), HG=[(300, 50.0), (500, 192.0)])
    assert lesson(run).startswith(
        "BC on demonstrations reached 95% of the expert's return "
        "with 300 labels, no more than the best interactive method"
    )
    run = _run([(300, 50.0)], (30_000, 199.0), HG=[(300, 50.0), (500, 100.0)])
    assert lesson(run).startswith("No interactive method reached 95%")
