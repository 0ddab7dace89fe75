"""Non-blind SR training: NBSR (or any kernel-conditioned SR network) fed with ground-truth kernel fields."""
from __future__ import annotations

from collections import OrderedDict

import torch
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from ssr.models.base_model import SVBaseModel
from ssr.models.training_utils import freeze_except
from ssr.pipelines.svkr import super_resolve


def perturb_kernel(kernel: torch.Tensor, strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Multiplicative log-normal tap noise, renormalised to sum 1: trains robustness to estimation errors.

    Args:
        kernel: (B, k*k, h, w) field.
        strength: std of the log-noise (0 = unchanged).
    """
    if strength <= 0:
        return kernel
    noise = torch.randn(kernel.shape, generator=generator, device=kernel.device, dtype=kernel.dtype)
    noisy = kernel * torch.exp(strength * noise)
    return noisy / noisy.sum(1, keepdim=True)


@MODEL_REGISTRY.register()
class NonBlindSRModel(SVBaseModel):
    """Trains a kernel-conditioned SR network (``network_g``, e.g. NBSR) with the data's ground-truth kernels.

    Options (``train`` block, beyond SRModel's): ``kernel_noise`` (float, default 0: std of multiplicative log-noise
    on the ground-truth taps, so the network tolerates imperfect estimates), ``grad_clip`` (max grad norm or ~),
    ``trainable_prefixes`` (e.g. ``[sft.]``: train only the kernel modulation of a pretrained trunk).
    Validation data must carry ``kernel`` (``SVPairedDataset`` on a generated SV test set does).

    Overrides: ``init_training_settings`` (reads the options above), ``optimize_parameters``, ``test``.
    Inherits feed_data (with on-device synthesis), validation, saving and resuming.
    """

    def init_training_settings(self) -> None:
        train = self.opt['train']
        self.kernel_noise = float(train.get('kernel_noise', 0.0))
        self.grad_clip = train.get('grad_clip')
        freeze_except(self.net_g, train.get('trainable_prefixes'))
        super().init_training_settings()

    def setup_optimizers(self) -> None:
        """SRModel's, with one summary line instead of a warning per frozen parameter."""
        params = [p for p in self.net_g.parameters() if p.requires_grad]
        frozen = sum(not p.requires_grad for p in self.net_g.parameters())
        if frozen:
            get_root_logger().info(f'{frozen} parameter tensors of network_g are frozen (train.trainable_prefixes)')
        optim = dict(self.opt['train']['optim_g'])
        self.optimizer_g = self.get_optimizer(optim.pop('type'), params, **optim)
        self.optimizers.append(self.optimizer_g)

    def optimize_parameters(self, current_iter: int) -> None:
        self.optimizer_g.zero_grad()
        kernel = perturb_kernel(self.kernel, self.kernel_noise) if self.kernel_noise else self.kernel
        self.output = super_resolve(self.net_g, self.lq, kernel, self.noise_level)
        losses = OrderedDict(l_pix=self.cri_pix(self.output, self.gt))
        self.finish_step(losses, current_iter, [self.net_g])

    def test(self) -> None:
        if getattr(self, 'kernel', None) is None:
            raise ValueError('NonBlindSRModel needs kernel fields in the test / validation data (dataroot_kernel)')
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        net.eval()
        with torch.no_grad():
            self.output = super_resolve(net, self.lq, self.kernel, self.noise_level)
        if self.is_train:
            self.net_g.train()
