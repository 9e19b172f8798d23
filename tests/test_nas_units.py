"""Platform-aware NAS without Ray: the search space, the reward as the paper writes it, the
controller (seeded draws, learning, exact state restore) and, on a deterministic fake landscape,
the controller against random search with the same budget (tests/test_nas.py runs searches)."""

import dataclasses

import numpy as np
import pytest

from mobilenet_v3 import ModelConfig, build_model
from mobilenet_v3.search import arch, controller as controller_lib, nas, space
from mobilenet_v3.specs import LARGE, RE, SMALL


@pytest.mark.parametrize("seed", [SMALL, LARGE], ids=["small", "large"])
def test_the_paper_networks_are_points_of_their_spaces(seed):
    s = space.SearchSpace(seed)
    assert [len(g) for g in s.groups] == ([1, 2, 3, 2, 3] if seed is SMALL
                                          else [1, 2, 3, 4, 2, 3])
    assert s.decode(s.seed_actions(), name=seed.name) == seed
    assert len(s.sizes) == len(s.decisions()) == 6 * len(s.groups)


def test_a_seed_outside_the_space_is_refused():
    mixed = dataclasses.replace(SMALL, blocks=(SMALL.blocks[0], SMALL.blocks[1],
                                               dataclasses.replace(SMALL.blocks[2], kernel=5))
                                + SMALL.blocks[3:])
    with pytest.raises(ValueError, match="group 2 .* mixes kernel"):
        space.SearchSpace(mixed).seed_actions()


def _choose(s, group, **values):
    """The seed's actions with some of one group's choices changed (by value)."""
    actions = list(s.seed_actions())
    for name, value in values.items():
        k = [c.name for c in s.choices].index(name)
        actions[group * len(s.choices) + k] = s.choices[k].options.index(value)
    return actions


def test_decode_applies_each_choice_to_every_row_of_its_group():
    s = space.SearchSpace(SMALL)
    spec = s.decode(_choose(s, 2, kernel=3, se=False, nl=RE, layers=-1, expansion=1.5,
                            width=1.25))
    rows = spec.blocks[3:5]                          # group 3 was rows 4-6: now two rows
    assert len(spec.blocks) == len(SMALL.blocks) - 1
    assert [(b.kernel, b.se, b.nl, b.out) for b in rows] == [(3, False, RE, 48)] * 2
    assert [b.exp for b in rows] == [144, 360]       # 96 and 240 x 1.5
    assert [b.stride for b in rows] == [2, 1]
    assert spec.blocks[:3] == SMALL.blocks[:3] and spec.blocks[5:] == SMALL.blocks[6:]
    longer = s.decode(_choose(s, 0, layers=1))      # a stride-2 group of one gains a row
    assert [(b.stride, b.out) for b in longer.blocks[:2]] == [(2, 16), (1, 16)]
    assert s.decode(_choose(s, 0, layers=-1)).blocks[0] == SMALL.blocks[0]   # never 0 rows


def test_every_sampled_network_builds_with_valid_residuals():
    s = space.SearchSpace(SMALL)
    rng = np.random.default_rng(0)
    for _ in range(3):
        actions = [int(rng.integers(0, n)) for n in s.sizes]
        spec = s.decode(actions)
        config = arch.with_spec(ModelConfig.from_flat(name="small", input_shape=(32, 32, 3),
                                                      classes=3), spec)
        model = build_model(config)
        residuals = sum(b.has_residual for b in arch.scaled(spec).blocks)
        adds = [l for l in model.layers if l.__class__.__name__ == "Add"]
        assert len(adds) == residuals
        assert model.output_shape == (None, 3)


def test_reward_is_the_papers_formula():
    assert nas.reward(0.7, 12.0, 10.0, -0.07) == pytest.approx(0.7 * 1.2 ** -0.07)
    assert nas.reward(0.7, 8.0, 10.0, -0.15) == pytest.approx(0.7 * 0.8 ** -0.15)
    assert nas.reward(0.7, 8.0, 10.0, -0.15) > 0.7 > nas.reward(0.7, 12.0, 10.0, -0.15)
    assert nas.reward(0.7, 8.0, 10.0, -0.07, hard=True) == pytest.approx(0.7)
    assert nas.reward(0.7, 12.5, 10.0, -0.07, hard=True) == pytest.approx(0.7 * 10 / 12.5)


def test_controller_draws_are_seeded_and_its_state_restores_exactly(tmp_path):
    sizes = space.SearchSpace(SMALL).sizes
    a = controller_lib.Controller(sizes, controller_lib.ControllerConfig(seed=3))
    first = a.sample(6, seed=11)
    assert (first == a.sample(6, seed=11)).all() and not (first == a.sample(6, seed=12)).all()
    assert first.shape == (6, len(sizes)) and (first < np.array(sizes)).all()
    a.update(first, np.linspace(0.1, 0.6, 6))
    a.save(str(tmp_path / "state"))
    b = controller_lib.Controller(sizes, controller_lib.ControllerConfig(seed=99))
    assert not (b.sample(6, seed=5) == a.sample(6, seed=5)).all()     # other weights
    b.restore(str(tmp_path / "state"))
    assert (b.sample(6, seed=5) == a.sample(6, seed=5)).all()
    assert b.baseline == a.baseline and b.updates == a.updates == 1
    more = a.sample(6, seed=6)      # the next update goes the same way (Adam's slots restored)
    assert a.update(more, np.arange(6.0)) == pytest.approx(b.update(more, np.arange(6.0)))
    assert (a.sample(6, seed=7) == b.sample(6, seed=7)).all()
    with pytest.raises(ValueError, match="another search space"):
        controller_lib.Controller(sizes[:-1]).restore(str(tmp_path / "state"))


def test_reinforce_makes_rewarded_choices_likelier():
    sizes = [3, 2, 3]
    c = controller_lib.Controller(sizes, controller_lib.ControllerConfig(seed=0,
                                                                        learning_rate=0.02))
    target = np.array([[2, 0, 1]])
    before = c.probabilities(target)[0]
    for r in range(25):
        actions = c.sample(8, seed=r)
        c.update(actions, (actions == target).mean(1))
    assert c.probabilities(target)[0] > 3 * before


def _landscape(s):
    """A deterministic fake device and task: latency and accuracy as fixed functions of the
    choices (wider / deeper / 5x5 / SE: slower and more accurate, with diminishing returns)."""
    rng = np.random.default_rng(42)
    cost = [rng.uniform(0.2, 1.0, n) * np.arange(n) for n in s.sizes]
    gain = [np.sqrt(c) * rng.uniform(0.5, 1.5) for c in cost]

    def measure(actions):
        lat = 1.0 + sum(c[a] for c, a in zip(cost, actions))
        acc = 1 - 0.6 * np.exp(-0.08 * sum(g[a] for g, a in zip(gain, actions)))
        return float(acc), float(lat)
    return measure


def _search(algorithm, seed, rounds=25, n=8, w=-0.15):
    s = space.SearchSpace(SMALL)
    measure = _landscape(s)
    target = measure(s.seed_actions())[1] * 0.8
    c = controller_lib.Controller(s.sizes, controller_lib.ControllerConfig(
        seed=seed, learning_rate=0.02))
    rng = np.random.default_rng(seed)
    rewards, latencies = [], []
    for r in range(rounds):
        actions = c.sample(n, seed=r) if algorithm == "controller" else \
            np.stack([rng.integers(0, k, n) for k in s.sizes], 1)
        scored = [measure(a) for a in actions]
        batch = [nas.reward(acc, lat, target, w) for acc, lat in scored]
        if algorithm == "controller":
            c.update(actions, batch)
        rewards += batch
        latencies.append([lat for _, lat in scored])
    return np.sort(rewards)[-5:].mean(), np.median(latencies[rounds // 2:])


def test_controller_beats_random_search_on_a_fixed_landscape():
    """The acceptance's shape on a landscape known in advance: with the same budget the
    controller's best-5 mean reward is at least random search's for each of 3 seeds."""
    for seed in range(3):
        assert _search("controller", seed)[0] >= _search("random", seed)[0]


def test_a_stronger_latency_exponent_moves_the_late_samples_faster():
    assert _search("controller", 0, w=-0.15)[1] < _search("controller", 0, w=-0.07)[1]
