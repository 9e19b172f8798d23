"""The data flags shared by the entry scripts (train.py, export_tflite.py) and their mapping.

absl flags live only in entry scripts; this module is part of that layer, not the library.
"""

from absl import flags

FLAGS = flags.FLAGS


def define(dataset_default, dataset_help: str, training: bool):
    """Defines the data flags; the training-only ones (synthetic sizes, crop, shuffle) too."""
    # A string the task's data config checks (each task names its own sources): a new task
    # brings its datasets without an edit here.
    flags.DEFINE_string("dataset", dataset_default,
                        dataset_help + " Classification: synthetic, image_folder "
                        "(--image_folder) or imagenet (tfds). Detection (--task=detection): "
                        "synthetic, coco_json (--detection_folder) or tfds coco/2017. "
                        "Segmentation (--task=segmentation): synthetic, mask_folder "
                        "(--mask_folder) or tfds cityscapes (--manual_dir with the two zips).")
    flags.DEFINE_string("mask_folder", None, "Segmentation: a folder with images/*.jpg|png and "
                        "masks/*.png (same names; class ids per pixel, 255 = ignore) "
                        "(--dataset=mask_folder).")
    flags.DEFINE_string("detection_folder", None, "Detection: a folder with annotations.json "
                        "(COCO format) and images/ (--dataset=coco_json).")
    flags.DEFINE_string("detection_val_json", None, "Detection: a COCO JSON to evaluate on "
                        "(e.g. instances_val2017.json) instead of holding out "
                        "--held_out_fraction of --detection_folder; its classes must be the "
                        "folder's.")
    flags.DEFINE_string("detection_val_images", None, "Detection: the images of "
                        "--detection_val_json (default: --detection_folder's images/).")
    flags.DEFINE_string("image_folder", None, "Root of an image folder <root>/<class>/*.jpg "
                        "(--dataset=image_folder).")
    flags.DEFINE_float("held_out_fraction", 0.1, "Image folder: fraction held out per class.")
    flags.DEFINE_string("class_list", None, "Image folder: a text file naming every class in "
                        "label order, one per line (e.g. a pretrained model's labels.txt); "
                        "classes without images keep their label. Default: the sorted "
                        "sub-folders, each holding images. Mask folder: the names of class "
                        "ids 0, 1, ... (default class_0, ...).")
    flags.DEFINE_string("data_dir", None, "tfds data_dir (prepared TFRecords).")
    flags.DEFINE_string("manual_dir", None,
                        "Folder with ILSVRC2012_img_train.tar / _val.tar to prepare ImageNet.")
    flags.DEFINE_enum("imagenet_classes", "1000", ["1000", "1001"],
                      "1001 shifts labels by one for a background class 0 (TF-Slim).")
    flags.DEFINE_integer("num_classes", 10, "Synthetic data: number of classes.")
    if training:
        flags.DEFINE_integer("synthetic_train_examples", 10000,
                             "Synthetic data: training examples.")
        flags.DEFINE_integer("synthetic_eval_examples", 1000,
                             "Synthetic data: held-out examples.")
        flags.DEFINE_float("min_crop_area", 0.08,
                           "Inception crop: smallest fraction of the image.")
        flags.DEFINE_integer("shuffle_buffer", 10000, "ImageNet stream shuffle buffer.")
        flags.DEFINE_bool("download_data", False, "tfds sources (detection: coco/2017): "
                          "download and prepare the data when data_dir does not hold it.")
        flags.DEFINE_float("min_scale", 0.5, "Segmentation: smallest random scale.")
        flags.DEFINE_float("max_scale", 2.0, "Segmentation: largest random scale.")
        flags.DEFINE_float("scale_step", 0.0, "Segmentation: scales in steps of this from "
                           "--min_scale (DeepLab's scale_factor_step_size 0.25); 0: uniform.")
        flags.DEFINE_enum("scale_of", "crop", ["crop", "original"], "Segmentation: the random "
                          "scale multiplies the original image (DeepLab's, for photos at "
                          "their native size, e.g. Cityscapes with 769 crops) or sets the "
                          "shorter side to the crop size x the scale (photos of any size).")


DATA_FLAGS = ("dataset", "image_folder", "held_out_fraction", "class_list", "data_dir",
              "manual_dir", "imagenet_classes", "num_classes", "mask_folder", "detection_folder",
              "detection_val_json", "detection_val_images",
              "synthetic_train_examples", "synthetic_eval_examples", "min_crop_area",
              "shuffle_buffer", "download_data", "min_scale", "max_scale", "scale_step", "scale_of")


def options(extra_flags=()):
    """The values of the data flags (those defined: the training-only ones in train.py only)
    and of `extra_flags`, as the task registry's plain Options."""
    from mobilenet_v3.tasks import Options
    names = [name for name in DATA_FLAGS + tuple(extra_flags) if name in FLAGS]
    return Options({name: FLAGS[name].value for name in names},
                   frozenset(name for name in names if FLAGS[name].present))


def task_data_config(task: str, image_size: int, seed: int):
    """The data config of `task` the flags describe (None when --dataset was left unset)."""
    if FLAGS.dataset is None:
        return None
    from mobilenet_v3 import tasks
    return tasks.get(task).data_config(options(), image_size, seed)
