"""Suite-wide settings.

Tiny models run fastest on one thread, and a shared or loaded machine makes torch's intra-op
threads wait on each other (a 40-step test took 7 minutes with 2 threads under load, 10 s with 1).
"""
import torch

torch.set_num_threads(1)
