import pytest

from mobilenet_v3 import ModelConfig, build_model
from mobilenet_v3.export.compression import qat as quantization


def test_quantize_model_rejects_in_graph_preprocessing():
    model = build_model(ModelConfig.from_flat(name="small", alpha=0.35, input_shape=(32, 32, 3)))
    with pytest.raises(ValueError, match="include_preprocessing=False"):
        quantization.quantize_model(model)
