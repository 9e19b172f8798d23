"""Classification: the exporter (export/exporter.py) and ImageNet-protocol top-1/top-5."""

from mobilenet_v3.export.formats import FORMAT_NAMES
from mobilenet_v3.tasks.registry import TaskSpec, register


def export(path, config, data, log=print):
    from mobilenet_v3 import export as exporting
    trained = exporting.load_trained(path)
    return exporting.export(trained, config, data, log)


def evaluate(paths, config):
    from mobilenet_v3.analysis import evaluation
    return evaluation.evaluate(paths, config.image_folder, config.data_dir, config.manual_dir,
                               config.class_map, config.batch_size, config.max_examples,
                               config.num_threads)


def is_file(tflite: bytes) -> bool:
    from mobilenet_v3.analysis import tflite_inspect
    return tflite_inspect.output_ranks(tflite) == [2]


SPEC = register(TaskSpec("classification", (None,), FORMAT_NAMES, export, evaluate, is_file))
