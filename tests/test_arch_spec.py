"""Architecture as data end to end: a ModelConfig may carry explicit rows (an ArchSpec, e.g.
one a search edited), which model_config.json records and reads back, and every builder uses."""

import dataclasses
import json

import pytest

from mobilenet_v3 import ModelConfig, build_model, specs
from mobilenet_v3.modeling.heads.ssdlite import DetectorConfig, build_ssdlite


def _edited(exp=48):
    rows = list(specs.LARGE.blocks)
    rows[2] = dataclasses.replace(rows[2], exp=exp)        # bneck3: 72 -> exp
    return dataclasses.replace(specs.LARGE, name="large_adapted", blocks=tuple(rows))


def test_explicit_rows_round_trip_through_the_record_and_build():
    config = ModelConfig.from_flat(name="large", spec=_edited(), input_shape=(64, 64, 3))
    config.validate()
    back = ModelConfig.from_record(json.loads(json.dumps(config.to_flat())))
    assert back == config and back.scaled_arch.blocks[2].exp == 48
    assert "spec" not in ModelConfig().to_flat()           # table records stay as they were
    model = build_model(back)
    assert model.get_layer("bneck3_expand").output_shape[-1] == 48
    table = build_model(ModelConfig.from_flat(name="large", input_shape=(64, 64, 3)))
    assert model.count_params() < table.count_params()


def test_explicit_rows_are_checked():
    with pytest.raises(ValueError, match="bneck3 exp has 50"):
        ModelConfig.from_flat(name="large", spec=_edited(50)).validate()
    for other in (dict(alpha=0.75), dict(reduced_tail=True), dict(minimalistic=True)):
        with pytest.raises(ValueError, match="explicit spec"):
            ModelConfig.from_flat(name="large", spec=_edited(), **other).validate()
    with pytest.raises(ValueError, match="not an ArchSpec"):
        ModelConfig.from_flat(name="large", spec={"blocks": [{"kernel": 3}]})


def test_a_detector_on_explicit_rows_records_them():
    det = DetectorConfig.create(classes=3, name="large", spec=_edited(),
                                input_shape=(64, 64, 3))
    back = DetectorConfig.from_flat(json.loads(json.dumps(det.to_flat())))
    assert back == det
    model = build_ssdlite(back)
    assert model.get_layer("bneck3_expand").output_shape[-1] == 48
