"""Augmentations of what D sees (``augment=diffaugment``, ``augment=ada``): ``base.py`` holds
the interface the models call, ``diffaugment.py`` and ``pipeline.py`` the differentiable
ops, ``ada.py`` the adaptive probability of Karras et al. (2020)."""
