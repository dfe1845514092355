"""A tqdm loop on stderr (`\r` redraws), optionally failing part-way or stopping quietly."""

import sys
import time

from tqdm import tqdm

total = int(sys.argv[1]) if len(sys.argv) > 1 else 200
fail_at = int(sys.argv[2]) if len(sys.argv) > 2 else 0
stop_at = int(sys.argv[3]) if len(sys.argv) > 3 else 0
for i in tqdm(range(1, total + 1), mininterval=0, miniters=1):
    time.sleep(0.002)
    if i == fail_at:
        raise RuntimeError("Expected all tensors to be on the same device (step %d)" % i)
    if i == stop_at:
        break
