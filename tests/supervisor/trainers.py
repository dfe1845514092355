"""Small real trainers, as source text the tests write to tmp_path."""

TQDM_OK = r"""
import sys, time
for i in range(1, 31):
    sys.stderr.write("\r%3d%%|#####     | %d/30 [00:01<00:02, 15.0it/s]" % (i * 100 // 30, i))
    sys.stderr.flush()
    time.sleep(0.01)
sys.stderr.write("\n")
print({'loss': 0.25, 'learning_rate': 1e-05, 'epoch': 1.0})
"""

CRASH_MID_RUN = r"""
import sys, time
def step(i):
    if i == 12:
        raise RuntimeError("loss is nan at step %d" % i)
for i in range(1, 31):
    sys.stderr.write("\r %d/30 [00:01<00:02, 15.0it/s]" % i)
    step(i)
"""

NEEDS_MODULE = r"""
import sys
import swtoymod
print("step 5/5")
print("toy", swtoymod.VALUE)
"""

OOM_UNLESS_SMALL = r"""
import os, sys
bs = int(os.environ["EVAL_BATCH_SIZE"])
assert sys.argv[1] == str(bs), (sys.argv, bs)
print("step 10/100 eval with batch", bs)
if bs > 16:
    sys.stderr.write('Traceback (most recent call last):\n  File "train.py", line 9, in <module>\n')
    sys.stderr.write("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. "
                     "GPU 0 has a total capacity of 79.25 GiB of which 1.12 GiB is free. "
                     "Including non-PyTorch memory, this process has 78.11 GiB memory in use.\n")
    sys.stderr.write("\r 10/100 [00:03<00:30, 3.0it/s]")
    sys.exit(1)
print("step 100/100")
"""

DIFFERENT_ERROR_EACH_TIME = r"""
import os
raise ValueError("bad batch in attempt %s" % os.environ["SLEEPWATCH_ATTEMPT"])
"""

SIGKILL_SELF = r"""
import os, sys
print("step 3/10", flush=True)
os.kill(os.getpid(), 9)
"""

HANG = r"""
import os, sys, time
print("step 1/10 attempt", os.environ["SLEEPWATCH_ATTEMPT"], flush=True)
if os.environ["SLEEPWATCH_ATTEMPT"] == "1":
    time.sleep(600)
print("step 10/10", flush=True)
"""

HANG_FOREVER = r"""
import time
print("step 1/10", flush=True)
time.sleep(600)
"""

EARLY_STOP_MARKER = r"""
for i in range(1, 6):
    print("Epoch %d: 100%%|####| %d/20 [00:01<00:00, val_loss=0.5]" % (i, i * 4))
print("Epoch 4: early stopping")
"""

METRIC_WORSENS = r"""
import sys, time
for i in range(1, 400):
    print("step %d/400" % i)
    print({'eval_loss': 1.0 + i * 0.01, 'epoch': i / 400})
    sys.stdout.flush()
    time.sleep(0.01)
"""
