"""CUDA failures as torch prints them (argv: how). Needs a CUDA GPU; used by record_gpu.py."""

import os
import sys

import torch

how = sys.argv[1]
for i in range(1, 6):
    print("step %d/100 loss=%.4f" % (i, 2.0 / i), flush=True)
dev = torch.device("cuda")
if how == "oom":
    free, total = torch.cuda.mem_get_info()
    torch.empty(int(total * 2), dtype=torch.uint8, device=dev)
elif how == "oom_fragmented":
    blocks = []
    while True:
        blocks.append(torch.empty(1 << 30, dtype=torch.uint8, device=dev))
elif how == "cublas_alloc":
    free, _ = torch.cuda.mem_get_info()
    hog = torch.empty(int(free - (8 << 20)), dtype=torch.uint8, device=dev)
    a = torch.randn(64, 64, device=dev, dtype=torch.float16)
    print((a @ a).sum())
elif how == "device_assert":
    emb = torch.nn.Embedding(10, 4).to(dev)
    print(emb(torch.tensor([3, 12], device=dev)).sum().item())
elif how == "cross_entropy_assert":
    logits = torch.randn(4, 5, device=dev)
    print(torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 7, 2], device=dev)).item())
elif how == "illegal_access":
    from torch.utils.cpp_extension import load_inline

    os.makedirs("build", exist_ok=True)
    cuda = (
        "__global__ void bad(float* p) { p[threadIdx.x + (1L << 40)] = 1.0f; }\n"
        "void run(torch::Tensor t) { bad<<<1, 32>>>(t.data_ptr<float>()); }\n"
    )
    mod = load_inline(
        "badkernel",
        cpp_sources=["void run(torch::Tensor t);"],
        cuda_sources=[cuda],
        functions=["run"],
        build_directory="build",
    )
    t = torch.zeros(32, device=dev)
    mod.run(t)
    torch.cuda.synchronize()
