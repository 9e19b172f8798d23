"""Host benchmarking helpers: interleaved TFLite timing, per-op profiles, peers, BN calibration.

The scripts in benchmark/ and the tests import these; the phone tool is android_bench/.
"""
