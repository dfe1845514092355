"""A trainer with its own progress format, read only through the user's progress_regex."""

for it in range(1, 41):
    print("[train] it=%d of 40 | lr 3e-4 | loss %.3f" % (it, 3.0 / it), flush=True)
