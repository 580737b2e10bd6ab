"""The evaluation layer: what measures models, as opposed to what trains or samples them.

    classifier     the project's MNIST digit classifier (bundled weights in core/assets/)
    metrics        PSNR, SSIM, feature statistics and the Frechet distance (FD)
    perceptual     frozen ImageNet MobileNetV2 features and the LPIPS-style distance on them
    evaluation     evaluation runs: class accuracy and FD of generated digits / RGB images
    edit_metrics   edit metrics on MobileNetV2 features (perceptual distance, structure)

Training and sampling do not depend on this package, except the optional perceptual loss
(``core.train`` imports ``core.eval.perceptual`` when ``perceptual_weight > 0``). The style
baselines (Gatys, ``pmf_edit.style.baselines``) and ``pmf_edit.bench`` use it to score outputs.
The former flat names (``core.metrics`` etc.) still import, as the same module objects.
"""
