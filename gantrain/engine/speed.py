"""The fast path (config group ``speed``): every switch ``auto``, ``true`` or ``false``.

Small GANs on a GPU are bound by kernel launches and memory traffic, not arithmetic.
``auto`` turns each part on for CUDA devices. On the CPU it turns on only the parts that
won clearly when measured there (``scripts/cpu_fast_path.py``, README "The fast path on
the CPU"); ``CPU_AUTO`` below says which, and why the others stay off. ``Speed.reasons``
records, for the run's environment table, what ``auto`` chose on the CPU and why.

* ``amp``: bf16 autocast around the forward passes. bf16 has float32's range, so no
  loss scaling is needed; logits are cast to float32 before the losses, and the
  gradient penalties reduce their input gradients in float32 (``losses/base.py``).
* ``channels_last``: NHWC weights and input batches, the layout cuDNN's tensor-core
  convolutions want (NCHW inputs would be transposed at every layer).
* ``compile``: ``torch.compile`` of G and D in place (``Module.compile``: state-dict
  keys do not change, so checkpoints load into uncompiled nets). A discriminator whose
  loss differentiates it twice (gradient penalty, R1) stays eager: compiled graphs have
  no double backward. Compilation happens at the first step; if it fails there, the
  loop restores the state from before that step and trains eagerly (one warning;
  ``compile_fallback.py``).
* ``fused_optim``: the optimizer's fused kernel (Adam, AdamW, SGD): one launch per step
  instead of several per parameter.
* ``cudnn_benchmark``, ``tf32``: cuDNN autotuning for the fixed shapes; TF32 tensor
  cores for the float32 matmuls and convolutions left outside autocast.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import shutil
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

log = logging.getLogger("gantrain")
# torch.compile's backend; tests swap in "eager" (tracing without code generation) or a
# failing one.
COMPILE_BACKEND = "inductor"


Switch = bool | Literal["auto"]

# What ``auto`` means on the CPU, measured with scripts/cpu_fast_path.py on 2 cores of a
# Xeon with AVX-512 (bf16 instructions, no AMX), torch 2.14.1; README "The fast path on the
# CPU" has the table. Each switch alone against eager:
CPU_AUTO = {
    # oneDNN's convolutions run NHWC natively: dcgan-28 1.17x, dcgan-64 1.08x, pix2pix 1.06x,
    # wgan_gp-64 1.02x; the MLP GAN (no convolutions) 0.96x.
    "channels_last": True,
    # inductor's C++ kernels fuse the pointwise ops: on top of channels_last and the fused
    # Adam, dcgan-28 1.02x, dcgan-64 1.04x, pix2pix 1.05x; the MLP GAN 0.97x. Long runs only.
    "compile": True,
    # bf16 without AMX: every workload slower (dcgan-28 0.87x, dcgan-64 0.74x, MLP 0.69x).
    "amp": False,
    # one pass over the parameters per Adam step: MLP 1.24x, pix2pix 1.26x, dcgan-28 1.05x.
    "fused_optim": True,
}
CONVOLUTIONAL_ONLY = ("channels_last", "compile")  # slower than eager for the MLP GAN
# torch.compile costs seconds at the first step and again where G first samples in eval
# mode (2 s with inductor's cache warm, 7 to 45 s cold, measured), against a gain of 2-7%
# per step: dcgan-28 (the default job) wins a cold compilation back after about 8,700 steps.
CPU_COMPILE_MIN_STEPS = 10_000


def convolves(nets: list[nn.Module]) -> bool:
    """Whether any of ``nets`` has a convolution (a 4-d weight): what channels_last and
    compilation pay off for on the CPU."""
    return any(p.dim() == 4 for net in nets for p in net.parameters())


def cpp_compiler() -> str | None:
    """The C++ compiler inductor builds CPU kernels with ($CXX, else g++, c++ or clang++ on
    the PATH), or None: then compiling on the CPU would fail at the first step."""
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def native_bf16() -> bool:
    """Whether the current GPU computes in bf16 itself (Ampere and later). Older GPUs
    (V100, T4) emulate it, slower than float32, so ``amp=auto`` leaves those off."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch before 2.3 counts native support only
        return torch.cuda.is_bf16_supported()


@dataclass(frozen=True)
class SpeedConfig:
    amp: Switch = "auto"
    channels_last: Switch = "auto"
    compile: Switch = "auto"
    fused_optim: Switch = "auto"
    cudnn_benchmark: Switch = "auto"
    tf32: Switch = "auto"

    def resolve(self, device: torch.device, steps: int | None = None, convolutional: bool = True) -> Speed:
        """The switches for this device: ``auto`` is on for CUDA (bf16 autocast only on
        GPUs that have bf16); on the CPU it is ``CPU_AUTO``'s choice, channels_last and
        compilation only for ``convolutional`` nets, compilation only for runs of at least
        ``CPU_COMPILE_MIN_STEPS`` ``steps`` (None: as long as it takes) and with a C++
        compiler; on other devices, off."""
        cuda, cpu = device.type == "cuda", device.type == "cpu"
        reasons: list[str] = []

        def on(name: str, auto: bool) -> bool:
            value = getattr(self, name)
            return auto if value == "auto" else bool(value)

        def cpu_auto(name: str) -> bool:
            if not cpu or getattr(self, name) != "auto":
                return False
            if not CPU_AUTO[name]:
                reasons.append(f"{name} off (slower on the CPU when measured)")
                return False
            if name in CONVOLUTIONAL_ONLY and not convolutional:
                reasons.append(f"{name} off (no convolutions: slower for these nets on the CPU when measured)")
                return False
            if name == "compile":
                if steps is not None and steps < CPU_COMPILE_MIN_STEPS:
                    reasons.append(f"compile off ({steps} steps: under {CPU_COMPILE_MIN_STEPS}, too few to pay for it)")
                    return False
                if cpp_compiler() is None:
                    reasons.append("compile off (no C++ compiler for inductor: install g++ or set CXX)")
                    return False
            return True

        return Speed(
            amp=on("amp", (cuda and native_bf16()) or cpu_auto("amp")),
            channels_last=on("channels_last", cuda or cpu_auto("channels_last")),
            compile=on("compile", cuda or cpu_auto("compile")),
            fused_optim=on("fused_optim", cuda or cpu_auto("fused_optim")),
            cudnn_benchmark=on("cudnn_benchmark", cuda),
            tf32=on("tf32", cuda),
            device=device,
            reasons=tuple(reasons),
        )


@dataclass(frozen=True)
class Speed:
    """The resolved switches, and what they do to nets, batches and optimizers."""

    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    fused_optim: bool = False
    cudnn_benchmark: bool = False
    tf32: bool = False
    device: torch.device = torch.device("cpu")
    reasons: tuple[str, ...] = ()  # why ``auto`` left a switch off on the CPU

    def summary(self) -> str:
        names = ("amp", "channels_last", "compile", "fused_optim", "cudnn_benchmark", "tf32")
        on = [("bf16 autocast" if n == "amp" else n) for n in names if getattr(self, n)]
        return ", ".join(on) or "none"

    def configure_backends(self) -> None:
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        # The long-standing API, not torch 2.9's fp32_precision: once the new one is set,
        # torch's own legacy getters raise (pytorch/pytorch#166387), and inductor still
        # calls torch.get_float32_matmul_precision() when it picks matmul kernels.
        torch.set_float32_matmul_precision("high" if self.tf32 else "highest")
        torch.backends.cudnn.allow_tf32 = self.tf32

    def autocast(self):
        """The context the forward passes run in."""
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def prepare_nets(self, *nets: nn.Module) -> None:
        if self.channels_last:
            for net in nets:
                net.to(memory_format=torch.channels_last)

    def prepare_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not self.channels_last:
            return batch
        return {
            key: value.contiguous(memory_format=torch.channels_last) if value.dim() == 4 else value
            for key, value in batch.items()
        }

    def optimizer_options(self, optimizer_class: type, given: dict) -> dict:
        """``fused=True`` for optimizers that have a fused kernel, unless the config chose."""
        if not self.fused_optim or "fused" in given:
            return {}
        try:
            takes_fused = "fused" in inspect.signature(optimizer_class).parameters
        except (TypeError, ValueError):
            takes_fused = False
        return {"fused": True} if takes_fused else {}


def compile_nets(nets: list[nn.Module], twice_differentiated: list[nn.Module]) -> list[nn.Module]:
    """Compile ``nets`` in place but those in ``twice_differentiated`` (a penalty
    differentiates their graphs twice, which compiled graphs cannot); returns those compiled."""
    eager = [net for net in nets if any(net is other for other in twice_differentiated)]
    compiled = [net for net in nets if not any(net is other for other in eager)]
    if eager:
        log.info(
            "speed.compile: D stays eager (its gradient penalty differentiates it twice, which compiled graphs cannot)"
        )
    for net in compiled:
        net.compile(backend=COMPILE_BACKEND)
    return compiled


def uncompile(nets: list[nn.Module]) -> None:
    """Back to eager: ``Module.compile`` only sets ``_compiled_call_impl``."""
    for net in nets:
        net._compiled_call_impl = None
