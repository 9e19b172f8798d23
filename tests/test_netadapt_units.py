"""NetAdapt's parts without Ray: the spaces and edits, weight inheritance, the oracles, the
proposal rule and the selection rule (tests/test_netadapt.py runs the search itself)."""

import json

import numpy as np
import pytest

from conftest import calibrated_model
from mobilenet_v3 import ModelConfig, build_model
from mobilenet_v3.search import arch, inherit, netadapt, oracles

SMALL_32 = ModelConfig.from_flat(name="small", alpha=0.75, input_shape=(32, 32, 3), classes=5,
                                 include_preprocessing=False)


def _spec(name="small", alpha=0.75):
    return arch.explicit_spec(ModelConfig.from_flat(name=name, alpha=alpha))


def test_explicit_spec_builds_the_same_network():
    config = SMALL_32
    a, b = build_model(config), build_model(arch.with_spec(config, arch.spec_of(config)))
    assert [(l.name, [w.shape for w in l.weights]) for l in a.layers] == \
        [(l.name, [w.shape for w in l.weights]) for l in b.layers]


def test_spaces_follow_the_residual_groups():
    small = _spec("small", 1.0)
    assert arch.proposal_spaces(small) == [
        "stem", "b1.out", "b2.exp", "b2.out", "b3.exp", "b4.exp", "b4.out", "b5.exp",
        "b6.exp", "b7.exp", "b7.out", "b8.exp", "b9.exp", "b9.out", "b10.exp", "b11.exp",
        "last"]
    narrower = arch.set_width(small, "b4.out", 32)       # rows 4-6 share the width (residuals)
    assert [b.out for b in narrower.blocks[3:6]] == [32, 32, 32]
    assert narrower.blocks[6].out == small.blocks[6].out
    assert [b.has_residual for b in arch.scaled(narrower).blocks] == \
        [b.has_residual for b in arch.scaled(small).blocks]
    # Large: row 1 has no expansion and a residual, so it shares the stem's space
    large = _spec("large", 1.0)
    assert arch.proposal_spaces(large)[:3] == ["stem", "b2.exp", "b2.out"]
    edited = arch.set_width(large, "stem", 8)
    assert (edited.stem_channels, edited.blocks[0].exp, edited.blocks[0].out) == (8, 8, 8)


def test_edits_that_change_the_structure_are_refused():
    small = _spec("small", 1.0)
    assert arch.set_width(small, "b4.exp", 24) is None   # = its input: the expansion vanishes
    assert arch.set_width(small, "b4.exp", 12) is None   # not a multiple of 8
    assert arch.set_width(small, "b4.exp", 96) is None   # unchanged
    assert arch.set_width(small, "b7.out", 40) is None   # = its input: a residual appears


def _silence(model, spec, space, index):
    """Makes channels `index` of `space` irrelevant: their producers and BN give 0 and every
    consumer ignores them, so a network without them computes the same."""
    for name, (inp, out) in inherit.layer_spaces(spec).items():
        layer = model.get_layer(name)
        weights = layer.get_weights()
        if name.endswith("_bn") and out == space:
            weights[0][index] = 0.0
            weights[1][index] = 0.0
        elif inp != out and out == space:
            weights[0][..., index] = 0.0
            if len(weights) > 1:
                weights[1][index] = 0.0
        elif inp != out and inp == space:
            weights[0][:, :, index, :] = 0.0
        layer.set_weights(weights)


@pytest.mark.parametrize("space,width", [("b4.exp", 88), ("b4.out", 24), ("last", 376)])
def test_inheritance_keeps_the_largest_filters_sliced_consistently(space, width, random_images):
    spec = arch.spec_of(SMALL_32)
    config = arch.with_spec(SMALL_32, spec)
    parent = calibrated_model(config)
    old = arch.widths(spec)[space]
    dropped = np.arange(1, old, old // (old - width))[:old - width]
    _silence(parent, spec, space, dropped)
    child_spec = arch.set_width(spec, space, width)
    child = build_model(arch.with_spec(SMALL_32, child_spec))
    kept = inherit.transfer(parent, spec, child, child_spec)
    assert set(kept) >= {space}
    assert not set(kept[space]) & set(dropped) and len(kept[space]) == width
    images = random_images(4, (32, 32, 3))
    np.testing.assert_allclose(child.predict(images, verbose=0),
                               parent.predict(images, verbose=0), atol=1e-5)


def test_inheritance_of_the_same_rows_is_exact(random_images):
    spec = arch.spec_of(SMALL_32)
    parent = calibrated_model(SMALL_32)
    child = build_model(arch.with_spec(SMALL_32, spec))
    assert inherit.transfer(parent, spec, child, spec) == {}
    images = random_images(2, (32, 32, 3))
    assert np.array_equal(child.predict(images, verbose=0), parent.predict(images, verbose=0))


def test_oracles_measure_cache_and_table(tmp_path):
    cache = oracles.Cache(str(tmp_path / "cache.json"))
    spec = _spec("small", 0.35)
    nets = [oracles.Network(spec, 32, 5), oracles.Network(arch.set_width(spec, "last", 104), 32, 5)]
    madds = oracles.MAddsOracle(cache)
    values = madds.measure(nets)
    assert values[1] < values[0]
    host = oracles.HostOracle(cache, oracles.HostSettings(runs=5, repeats=1, warmup=2))
    table = oracles.TableOracle(host, cache)
    assert all(v > 0 for v in host.measure(nets) + table.measure(nets))
    saved = json.loads((tmp_path / "cache.json").read_text())
    assert set(saved) >= {"madds", "host", "table/host", "table/host/pieces"}
    # each distinct piece timed once (rows 5 and 6 of Small are the same piece)
    pieces = {k for n in nets for k, _ in oracles._pieces(n)}
    assert set(saved["table/host/pieces"]) == pieces and len(pieces) < 2 * (len(spec.blocks) + 2)
    again = oracles.MAddsOracle(oracles.Cache(str(tmp_path / "cache.json")))
    again._measure = None        # from the cache: nothing is measured again
    assert again.measure(nets) == values
    errors = oracles.error_table([1.1, 0.9], [1.0, 1.0])
    assert errors["mean_abs_relative_error"] == pytest.approx(0.1)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        oracles.Cache(str(tmp_path / "bad.json"))


def test_proposals_are_the_widest_that_cut_delta():
    spec = _spec("small", 0.35)
    madds = oracles.MAddsOracle()

    def network(s):
        return oracles.Network(s, 32, 5)
    current = madds.latency(network(spec))
    delta = 0.02 * current
    proposals = netadapt.propose(spec, current, delta, network, madds,
                                 spaces=["b9.exp", "b9.out", "last"])
    assert [p["space"] for p in proposals] == ["b9.exp", "b9.out", "last"]
    for p in proposals:
        assert p["latency"] <= current - delta
        wider = arch.set_width(spec, p["space"], p["width"] + arch.CHANNEL_STEP)
        if wider is not None and wider != spec:
            assert madds.latency(network(wider)) > current - delta


def test_selection_rules():
    proposals = [{"top1": 0.60, "latency": 9.0},    # -0.10 for 1 ms
                 {"top1": 0.66, "latency": 9.5},    # -0.04 for 0.5 ms: -0.08 per ms
                 {"top1": 0.50, "latency": 7.0}]    # -0.20 for 3 ms: -0.067 per ms
    assert netadapt.select(proposals, 0.70, 10.0, "ratio") == 2
    assert netadapt.select(proposals, 0.70, 10.0, "smallest_drop") == 1
