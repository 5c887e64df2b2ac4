"""A stand-in training job for trying `nnprobe diagnose --follow`: logs loss and accuracy with torch's
SummaryWriter into ./run, 20 steps a second, and the loss turns NaN from step 120.

    python samples/toy_training.py & nnprobe diagnose --follow run --poll 1 --kill-on-error $!
"""
import math
import time

from torch.utils.tensorboard import SummaryWriter

writer = SummaryWriter("run")
for step in range(1000):
    loss = math.nan if step >= 120 else 2.3 * math.exp(-step / 60) + 0.1
    writer.add_scalar("train/loss", loss, step)
    writer.add_scalar("train/acc", min(0.9, step / 150), step)
    writer.flush()
    time.sleep(0.05)
