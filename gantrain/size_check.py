"""A size that cannot fit in memory is refused before anything is allocated.

``model.generator.width=100000`` or ``data.batch_size=10000000`` would otherwise end in
an allocator's traceback from deep inside torch, after the run directory exists. The
check is a *lower bound* from the config alone, no net is built, so it never refuses a
config that fits; it only catches sizes that are out of reach by orders of magnitude:

* parameters, for each net: ``width**2`` for a conv net (every gantrain conv net has a
  layer from ``width`` channels or more to ``width`` or more, Radford et al. 2016,
  Isola et al. 2017, Zhu et al. 2017), ``hidden * C * S**2`` for an MLP (its image layer
  maps ``C*S*S`` pixels from or to at least ``hidden`` units, Goodfellow et al. 2014);
  4 bytes each for the weight and 4 for its gradient, on the training device;
* one batch on the training device: the real and the fake images (``2 * B * C * S**2``
  floats) and, for a conv net, one feature map of ``width`` channels at half the image
  size (``B * width * (S/2)**2`` floats);
* the fixed-noise sample grid (``trainer.num_samples`` images) on the training device;
* a synthetic dataset's images (``data.size * C * S**2`` bytes, uint8) in host memory.

``C`` and ``S`` are ``data.channels`` (1 when the data node does not say) and
``data.image_size``. The machine's memory: the GPU's total memory for a CUDA device,
the host's physical memory otherwise (``os.sysconf``).
"""

from __future__ import annotations

import os

from gantrain.errors import UserError

FLOAT = 4  # bytes of a float32
NETS = ("generator", "discriminator")


def host_memory() -> int | None:
    """The host's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def device_memory(device: str) -> tuple[int | None, str]:
    """The memory of the training device in bytes, and its name in words."""
    import torch

    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda and torch.cuda.is_available():
        index = int(device.split(":")[1]) if device.startswith("cuda:") and device[5:].isdigit() else 0
        if index < torch.cuda.device_count():
            return torch.cuda.get_device_properties(index).total_memory, f"GPU {index}"
    return host_memory(), "host"


def _int(node: dict, key: str, default: int) -> int:
    value = node.get(key, default)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


def lower_bound(tree: dict, num_samples: int) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """The (bytes, what and which keys) of the training device and of the host."""
    data, model = tree["data"], tree["model"]
    channels, size, batch = _int(data, "channels", 1), _int(data, "image_size", 1), _int(data, "batch_size", 1)
    pixels = channels * size * size
    device, host = [], []
    params, widest, keys = 0, 0, []
    for name in NETS:
        net = model.get(name) or {}
        if "width" in net:
            width = _int(net, "width", 1)
            params += width * width
            widest = max(widest, width)
            keys.append(f"model.{name}.width={width}")
        elif "hidden" in net:
            hidden = _int(net, "hidden", 1)
            params += hidden * pixels
            keys.append(f"model.{name}.hidden={hidden}")
    if params:
        device.append((2 * FLOAT * params, f"{params:.3g} parameters and their gradients ({', '.join(keys)})"))
    activations = 2 * batch * pixels + batch * widest * (size // 2) ** 2
    device.append((FLOAT * activations, f"one batch (data.batch_size={batch}, data.image_size={size})"))
    device.append((FLOAT * num_samples * pixels, f"the sample grid (trainer.num_samples={num_samples})"))
    if "size" in data:  # a dataset made in memory (data=synthetic)
        host.append((_int(data, "size", 1) * pixels, f"the dataset (data.size={data['size']})"))
    return device, host


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def check_fits_in_memory(tree: dict, num_samples: int) -> None:
    """Refuse a config whose lower bound exceeds the machine's memory, naming the estimate."""
    on_device, on_host = lower_bound(tree, num_samples)
    memory, where = device_memory(str(tree.get("device", "auto")))
    if where == "host":
        on_device, on_host = on_device + on_host, []
    for parts, total, name in ((on_device, memory, where), (on_host, host_memory(), "host")):
        need = sum(n for n, _ in parts)
        if total and need > total:
            largest = max(parts)[1]
            raise UserError(
                f"this config needs at least {_gib(need)} of {name} memory, more than the {_gib(total)} "
                f"there is; most of it for {largest}: lower that"
            )
