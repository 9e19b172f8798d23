"""Classification: training data from the data flags, the exporter (export/exporter.py) and
ImageNet-protocol top-1/top-5."""

from mobilenet_v3.export.formats import FORMAT_NAMES
from mobilenet_v3.tasks.registry import TaskSpec, TrainingSpec, register

# Data options only train.py defines (export_tflite.py leaves them at the config's defaults).
TRAINING_DATA_OPTIONS = ("synthetic_train_examples", "synthetic_eval_examples", "min_crop_area",
                         "shuffle_buffer")


def data_config(options, image_size: int, seed: int):
    """The data.pipeline.DataConfig of the data options."""
    from mobilenet_v3.data.pipeline import DataConfig
    extra = {name: options[name] for name in TRAINING_DATA_OPTIONS if name in options}
    return DataConfig(source=options["dataset"], image_size=image_size, seed=seed,
                      num_classes=options["num_classes"], image_folder=options["image_folder"],
                      held_out_fraction=options["held_out_fraction"],
                      data_dir=options["data_dir"], manual_dir=options["manual_dir"],
                      class_list=options["class_list"],
                      imagenet_classes=int(options["imagenet_classes"]), **extra)


def make_task(config, options):
    """None: the Trainer builds its default ClassificationTask, after the strategy."""
    return None


def final_metrics(result) -> str:
    return f"top-1 {result['top1']:.4f}  top-5 {result['top5']:.4f}"


def export(path, config, data, log=print):
    from mobilenet_v3 import export as exporting
    trained = exporting.load_trained(path)
    return exporting.export(trained, config, data, log, source=path)


def evaluate(paths, config):
    from mobilenet_v3.analysis import evaluation
    return evaluation.evaluate(paths, config.image_folder, config.data_dir, config.manual_dir,
                               config.class_map, config.batch_size, config.max_examples,
                               config.num_threads)


def is_file(tflite: bytes) -> bool:
    from mobilenet_v3.analysis import tflite_inspect
    return tflite_inspect.output_ranks(tflite) == [2]


SPEC = register(TaskSpec("classification", (None,), FORMAT_NAMES, export, evaluate, is_file,
                         data_config=data_config,
                         training=TrainingSpec(make_task=make_task, final_metrics=final_metrics)))
