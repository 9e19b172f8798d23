"""Input pipelines (tf.data): the built-in synthetic dataset and the paper's preprocessing."""
