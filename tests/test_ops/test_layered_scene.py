"""Layered scenes: content-aligned depth and thin-lens defocus with occlusions (ssr.ops.layered_scene)."""
import pytest
import torch

from ssr.ops.kernel_field import depth_to_kernel_params, kernel_field_from_params
from ssr.ops.layered_scene import compose_layered_scene, layered_blur_downsample, random_shape_masks
from ssr.ops.sv_blur import sv_blur_downsample

SETTINGS = {'focus': torch.tensor([1.0]), 'sigma_min': torch.tensor([0.3]), 'sigma_max': torch.tensor([3.0]),
            'anisotropy': torch.tensor([1.0]), 'theta': torch.tensor([0.0]), 'motion_sigma': torch.tensor([0.0]),
            'motion_angle': torch.tensor([0.0])}


def _scene(batch=2, layers=3, size=48, seed=0, min_layers=2):
    g = torch.Generator().manual_seed(seed)
    photos = torch.rand(batch, layers, 3, size, size, generator=torch.Generator().manual_seed(seed + 1))
    return compose_layered_scene(photos, g, min_layers=min_layers)


def test_masks_are_binary_and_cover_a_part():
    masks, centres = random_shape_masks(16, 40, 56, torch.Generator().manual_seed(0))
    assert masks.shape == (16, 1, 40, 56) and set(masks.unique().tolist()) <= {0.0, 1.0}
    cover = masks.mean(dim=(1, 2, 3))
    assert bool((cover > 0.01).all()) and bool((cover < 0.9).all())
    assert bool(((centres >= 0.15) & (centres <= 0.85)).all())


def test_depth_edges_are_occlusion_edges():
    scene = _scene()
    assert scene.image.shape == (2, 3, 48, 48) and scene.depth.shape == (2, 1, 48, 48)
    assert torch.allclose(scene.depth.amin(dim=(1, 2, 3)), torch.zeros(2))
    assert torch.allclose(scene.depth.amax(dim=(1, 2, 3)), torch.ones(2))
    assert bool((scene.alpha[:, 0] == 1).all())
    # the composite image is the front-most covering layer's photo, and its depth that layer's plane
    front = (scene.alpha[:, :, 0] * torch.arange(3).view(1, 3, 1, 1)).amax(dim=1).long()  # (B, H, W)
    picked = torch.gather(scene.layers, 1, front[:, None, None].expand(2, 1, 3, 48, 48))[:, 0]
    assert torch.equal(picked, scene.image)
    depth = torch.gather(scene.layer_depth, 1, front[:, None, None].expand(2, 1, 1, 48, 48))[:, 0]
    assert torch.allclose(depth, scene.depth, atol=1e-6)
    # nearer layers are nearer (larger inverse depth) on average
    means = scene.layer_depth.mean(dim=(2, 3, 4))
    assert bool((means[:, 1:] >= means[:, :-1] - 0.3).all())


def test_single_layer_equals_sv_blur_of_its_field():
    scene = _scene(batch=1, layers=1, min_layers=1)
    lr, kernel = layered_blur_downsample(scene, SETTINGS, 11, 4)
    params = depth_to_kernel_params(torch.nn.functional.interpolate(scene.depth, size=(12, 12), mode='area'),
                                    **SETTINGS)
    field = kernel_field_from_params(params['sigma1'], params['sigma2'], params['theta'], 11, 4)
    assert torch.allclose(kernel, field, atol=1e-6)
    assert torch.allclose(lr, sv_blur_downsample(scene.image, field, 4).clamp(0, 1), atol=1e-5)


def test_sharp_near_layer_keeps_its_edge():
    """A near layer in focus over a blurred far one: no far colour leaks into it and its edge stays sharp."""
    size = 64
    photos = torch.zeros(1, 2, 3, size, size)
    photos[0, 1] = 1.0  # white near layer, black far layer
    alpha = torch.zeros(1, 2, 1, size, size)
    alpha[:, 0] = 1
    alpha[:, 1, :, :, 32:] = 1
    depth = torch.zeros(1, 2, 1, size, size)
    depth[:, 1] = 1.0
    from ssr.ops.layered_scene import LayeredScene

    scene = LayeredScene(layers=photos, alpha=alpha, layer_depth=depth, image=photos[:, 1] * alpha[:, 1],
                         depth=depth[:, 1] * alpha[:, 1])
    lr, kernel = layered_blur_downsample(scene, SETTINGS, 21, 4)  # focus 1 = near layer sharp
    assert torch.allclose(lr[0, :, :, 9:], torch.ones(3, 16, 7), atol=1e-4)  # inside the near layer: pure white
    # the far layer is blurred (sigma 3 px) but cut by the near layer's sharp alpha: the first LR column past the
    # edge is fully white, the last one before it is darker than half
    assert float(lr[0, 0, 8, 8]) > 0.99 and float(lr[0, 0, 8, 7]) < 0.5
    assert kernel.shape == (1, 441, 16, 16)


def test_reproducible_and_validated():
    a, b = _scene(seed=3), _scene(seed=3)
    assert torch.equal(a.image, b.image) and torch.equal(a.depth, b.depth)
    with pytest.raises(ValueError, match='min_layers'):
        compose_layered_scene(torch.rand(1, 2, 3, 8, 8), min_layers=3)
    with pytest.raises(ValueError, match='layers must be'):
        compose_layered_scene(torch.rand(1, 3, 8, 8))


def test_unused_layers_are_skipped_without_changing_the_result():
    """A scene with an empty layer gives what the same scene without that layer gives."""
    from ssr.ops.layered_scene import LayeredScene

    scene = _scene(batch=2, layers=3, min_layers=3)
    alpha = scene.alpha.clone()
    alpha[1, 1] = 0  # image 1: its middle layer unused
    padded = LayeredScene(layers=scene.layers, alpha=alpha, layer_depth=scene.layer_depth, image=scene.image,
                          depth=scene.depth)
    settings = {k: v.expand(2).clone() if v.dim() else v.repeat(2) for k, v in SETTINGS.items()}
    lr, kernel = layered_blur_downsample(padded, settings, 11, 4)
    keep = [0, 2]
    single = {k: v[1:2] for k, v in settings.items()}
    reduced = LayeredScene(layers=scene.layers[1:2, keep], alpha=alpha[1:2, keep],
                           layer_depth=scene.layer_depth[1:2, keep], image=scene.image[1:2], depth=scene.depth[1:2])
    lr_ref, kernel_ref = layered_blur_downsample(reduced, single, 11, 4)
    torch.testing.assert_close(lr[1:2], lr_ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(kernel[1:2], kernel_ref, rtol=0, atol=1e-7)
