"""A trainer that ends by a real signal: sent to itself, or simply waiting for one from outside."""

import os
import signal
import sys
import time

how = sys.argv[1]
for i in range(1, 8):
    print("step %d/100 loss=%.4f" % (i, 2.0 / i), flush=True)
if how == "segv":
    import ctypes

    ctypes.string_at(0)
elif how == "abort":
    os.abort()
elif how == "wait":
    time.sleep(120)
else:
    os.kill(os.getpid(), getattr(signal, how))
    time.sleep(5)
