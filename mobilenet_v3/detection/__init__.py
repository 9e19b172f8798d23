"""SSDLite detection: anchors and box coding, data, COCO metrics and the detection Task.

The network itself is modeling/heads/ssdlite.py; export is export/detection.py.
"""
