"""Task heads on the MobileNetV3 backbone: SSDLite (detection), LR-ASPP / R-ASPP (segmentation).

Each head takes the endpoints the backbone records while building.
"""
