"""A plain training loop printing `step N/M` or `epoch N/M`; it may stop early or fail.

python plain_loop.py --unit step|epoch --total M [--every K] [--stop-at N] [--fail-at N]
    [--say-stop]

--every K: print every K-th step only (a trainer that logs every K steps).
"""

import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--unit", default="step")
parser.add_argument("--total", type=int, default=100)
parser.add_argument("--every", type=int, default=1)
parser.add_argument("--stop-at", type=int, default=0)
parser.add_argument("--fail-at", type=int, default=0)
parser.add_argument("--say-stop", action="store_true")
args = parser.parse_args()

loss = 2.0
for i in range(1, args.total + 1):
    loss *= 0.97
    if i % args.every == 0:
        print("%s %d/%d loss=%.4f" % (args.unit, i, args.total, loss), flush=True)
    if i == args.fail_at:
        raise ValueError("loss became nan at %s %d" % (args.unit, i))
    if i == args.stop_at:
        if args.say_stop:
            print(f"Validation loss did not improve for 3 {args.unit}s: early stopping")
        break
