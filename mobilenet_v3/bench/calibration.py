"""Realistic activations for untrained networks before timing or quantizing them.

Used by the benchmarks and tests that time or quantize randomly initialised networks.
"""


def calibrate_batch_norm(model, images, passes: int = 3):
    """Real BN statistics from training-mode passes (momentum 0.01 while doing it).

    An untrained network with BN's initial statistics shrinks activations to ~1e-8: int8
    ranges no trained model has, and possibly slow denormal arithmetic.
    """
    import tf_keras
    bns = [l for l in model.layers if isinstance(l, tf_keras.layers.BatchNormalization)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 0.01
    for _ in range(passes):
        model(images, training=True)
    for bn, m in zip(bns, saved):
        bn.momentum = m
