"""Host memory exhaustion in the forms real libraries print (run under `ulimit -v` or a cgroup)."""

import sys

how = sys.argv[1]
print("step 3/100 loss=1.2345", flush=True)
if how == "torch":
    import torch

    x = torch.empty(64 * 1024**3 // 4, dtype=torch.float32)
elif how == "numpy":
    import numpy as np

    x = np.zeros((256, 1024, 1024, 64), dtype=np.float32)
elif how == "bytes":
    x = bytearray(48 * 1024**3)
elif how == "grow":
    chunks = []
    while True:
        chunks.append(bytearray(64 * 1024**2))
elif how == "list":
    x = [0.0] * (8 * 1024**3)
