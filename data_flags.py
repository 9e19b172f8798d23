"""The data flags shared by the entry scripts (train.py, export_tflite.py) and their mapping.

absl flags live only in entry scripts; this module is part of that layer, not the library.
"""

from absl import flags

FLAGS = flags.FLAGS


def define(dataset_default, dataset_help: str, training: bool):
    """Defines the data flags; the training-only ones (synthetic sizes, crop, shuffle) too."""
    flags.DEFINE_enum("dataset", dataset_default, ["synthetic", "image_folder", "imagenet",
                                                   "coco_json", "coco", "mask_folder",
                                                   "cityscapes"],
                      dataset_help + " Detection (--task=detection): synthetic, coco_json "
                      "(--detection_folder) or tfds coco/2017. Segmentation "
                      "(--task=segmentation): synthetic, mask_folder (--mask_folder) or tfds "
                      "cityscapes (--manual_dir with the two zips).")
    flags.DEFINE_string("mask_folder", None, "Segmentation: a folder with images/*.jpg|png and "
                        "masks/*.png (same names; class ids per pixel, 255 = ignore) "
                        "(--dataset=mask_folder).")
    flags.DEFINE_string("detection_folder", None, "Detection: a folder with annotations.json "
                        "(COCO format) and images/ (--dataset=coco_json).")
    flags.DEFINE_string("image_folder", None, "Root of an image folder <root>/<class>/*.jpg "
                        "(--dataset=image_folder).")
    flags.DEFINE_float("held_out_fraction", 0.1, "Image folder: fraction held out per class.")
    flags.DEFINE_string("class_list", None, "Image folder: a text file naming every class in "
                        "label order, one per line (e.g. a pretrained model's labels.txt); "
                        "classes without images keep their label. Default: the sorted "
                        "sub-folders, each holding images.")
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


def data_config(image_size: int, seed: int):
    """The DataConfig the flags describe (None when --dataset was left unset)."""
    from mobilenet_v3.data.pipeline import DataConfig
    if FLAGS.dataset is None:
        return None
    extra = {name: FLAGS[name].value for name in (
        "synthetic_train_examples", "synthetic_eval_examples", "min_crop_area",
        "shuffle_buffer") if name in FLAGS}
    return DataConfig(source=FLAGS.dataset, image_size=image_size, seed=seed,
                      num_classes=FLAGS.num_classes, image_folder=FLAGS.image_folder,
                      held_out_fraction=FLAGS.held_out_fraction, data_dir=FLAGS.data_dir,
                      manual_dir=FLAGS.manual_dir, class_list=FLAGS.class_list,
                      imagenet_classes=int(FLAGS.imagenet_classes), **extra)


def segmentation_data_config(image_size: int, seed: int):
    """The SegmentationDataConfig the flags describe (--task=segmentation)."""
    from mobilenet_v3.segmentation.data import SegmentationDataConfig
    extra = {name: FLAGS[name].value for name in (
        "synthetic_train_examples", "synthetic_eval_examples") if name in FLAGS}
    return SegmentationDataConfig(
        source=FLAGS.dataset, image_size=image_size, seed=seed,
        num_classes=FLAGS.num_classes if FLAGS["num_classes"].present else None,
        mask_folder=FLAGS.mask_folder, held_out_fraction=FLAGS.held_out_fraction,
        data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir, **extra)


def detection_data_config(image_size: int, seed: int):
    """The DetectionDataConfig the flags describe (--task=detection)."""
    from mobilenet_v3.detection.data import DetectionDataConfig
    extra = {name: FLAGS[name].value for name in (
        "synthetic_train_examples", "synthetic_eval_examples") if name in FLAGS}
    return DetectionDataConfig(source=FLAGS.dataset, image_size=image_size, seed=seed,
                               num_classes=FLAGS.num_classes,
                               detection_folder=FLAGS.detection_folder,
                               held_out_fraction=FLAGS.held_out_fraction,
                               data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir, **extra)


def task_data_config(task: str, image_size: int, seed: int):
    """The data config of `task` the flags describe (None when --dataset was left unset)."""
    if FLAGS.dataset is None:
        return None
    if task == "detection":
        return detection_data_config(image_size, seed)
    if task == "segmentation":
        return segmentation_data_config(image_size, seed)
    return data_config(image_size, seed)
