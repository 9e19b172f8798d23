"""The classification head of the paper's efficient last stage: pool, 1x1 conv, logits.

Without a top, only the optional global pooling of keras.applications' `pooling=`.
"""

from tf_keras import layers

from mobilenet_v3.modeling import naming
from mobilenet_v3.modeling.backbone import kernel_regularizer
from mobilenet_v3.modeling.config import ModelConfig
from mobilenet_v3.modeling.layers import activation


def classifier_head(x, config: ModelConfig):
    """Avg pool -> 1x1 conv (1280 / 1024, no BN) -> dropout -> 1x1 logits -> activation."""
    arch, head = config.scaled_arch, config.head
    regularizer = kernel_regularizer(config)
    if not head.include_top:
        if head.pooling == "avg":
            return layers.GlobalAveragePooling2D(name=naming.POOL)(x)
        if head.pooling == "max":
            return layers.GlobalMaxPooling2D(name=naming.POOL)(x)
        return x
    x = layers.GlobalAveragePooling2D(keepdims=True, name=naming.POOL)(x)
    x = layers.Conv2D(arch.head_channels, 1, use_bias=True, kernel_regularizer=regularizer,
                      name=naming.HEAD)(x)
    x = activation(x, arch.spec.head_nl, naming.act(naming.HEAD), config.graph.hard_swish_form)
    if head.dropout_rate > 0:
        x = layers.Dropout(head.dropout_rate, name=naming.DROPOUT)(x)
    x = layers.Conv2D(head.classes, 1, use_bias=True, kernel_regularizer=regularizer,
                      name=naming.LOGITS)(x)
    x = layers.Reshape((head.classes,), name=naming.LOGITS_FLAT)(x)
    return layers.Activation(head.classifier_activation, name=naming.PREDICTIONS)(x)
