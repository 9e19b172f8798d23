"""Model compression before conversion: quantization-aware training (tfmot), later pruning.
"""
