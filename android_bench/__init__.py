"""Latency on an attached Android phone, the way the paper measured: the TFLite benchmark
tool, one thread, pinned to the large cores, over adb."""
