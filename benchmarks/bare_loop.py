"""A bare timed loop of one torchvision model: the reference the runner's throughput is held to.

Runs inside an environment (Python 3.7 syntax, torch + torchvision only). Prints one JSON
line: {"batch_size": B, "images_per_s": X}. Same model, seed, input and device as the probe,
none of its code.
"""

import json
import sys
import time

import numpy as np
import torch
import torchvision


def main(model_name, batch, warmup, iterations, threads, device):
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = getattr(torchvision.models, model_name)().eval().to(device)
    x = torch.from_numpy(np.random.RandomState(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)).to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        sync()
        tick = time.perf_counter()
        for _ in range(iterations):
            model(x)
        sync()
        total = time.perf_counter() - tick
    print(json.dumps({"batch_size": batch, "images_per_s": batch * iterations / total}))


if __name__ == "__main__":
    name, batch, warmup, iterations, threads, device = sys.argv[1:7]
    main(name, int(batch), int(warmup), int(iterations), int(threads), device)
