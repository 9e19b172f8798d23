"""Semantic segmentation (paper 6.4): data (synthetic, image + mask folders, Cityscapes),
augmentation, mIoU and the training Task for LR-ASPP / R-ASPP."""
