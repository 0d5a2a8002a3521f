"""Taking a trained generator anywhere: ``gantrain-export`` (``cli.py``) writes it as
safetensors, ONNX or TorchScript into a self-contained folder (``folder.py``) with a
parity check against PyTorch (``parity.py``) and a model card (``card.py``);
``gantrain.load_generator`` and every tool read a safetensors folder back.

Nothing is imported here: ``trained.load_generator`` reads ``folder.py`` without the rest.
"""
