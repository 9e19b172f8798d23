"""mobilenet-v3: MobileNetV3 (Howard et al., 2019) for TensorFlow/tf_keras, with TFLite export."""

from setuptools import find_packages, setup

_COREMLTOOLS = ("coremltools>=9.0,<10; sys_platform == 'darwin' or "
                "(sys_platform == 'linux' and platform_machine == 'x86_64')")

setup(
    name="mobilenet-v3",
    version="0.1.0",
    description="Reference MobileNetV3-Large/Small for tf_keras: training, TFLite export, "
                "phone latency benchmarks",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["mobilenet_v3", "mobilenet_v3.*"]),
    # A set measured to install and work together (../shared/TOOLCHAIN.md). tfmot 0.8 can only
    # quantize Keras 2 models, hence tf-keras; it also pins absl-py ~= 1.2.
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tf-keras>=2.21,<2.22",
        "tensorboard>=2.20,<2.22",   # TF 2.21 no longer pulls it in; tf.summary needs it
        "tensorflow-model-optimization>=0.8.1,<0.9",
        "tensorflow-datasets>=4.9.10,<4.10",
        "importlib_resources>=6",
        "ai-edge-litert>=2.3,<2.4",
        "absl-py>=1.2,<2",
        "numpy>=1.26,<3",
        "matplotlib>=3.8",
        "pycocotools>=2.0.8,<3",    # COCO mAP for the SSDLite detector
        # NetAdapt's fine-tunes (netadapt.py): a private local Ray, or a cluster. The core
        # package only: no dashboard dependencies (a local Ray starts none).
        "ray>=2.60,<2.61",
    ],
    extras_require={
        # coremltools: only its generated protobuf modules, to read the official
        # SSDLite-MobileNetV3 weights from their Core ML conversion in ../shared (tests and
        # benchmarks; users import the OD API's model.ckpt without it). Wheels exist for
        # Linux x86_64 and macOS only: elsewhere the tests that need it skip.
        "test": ["pytest>=8", "pytest-xdist>=3.5", _COREMLTOOLS],
        "coreml": [_COREMLTOOLS],
    },
)
