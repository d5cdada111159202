"""Training a run longer than its schedule said (`train --resume --steps N` with a larger N).

Most schedules depend on the number of steps, so more steps change the learning rate under a
run that has already trained: a cosine run finished at step 20000 on 0.1 lr would go on at a
much higher rate, and its loss jumps. That is said in one line when it happens.

wsd (warm-up, stable, decay) is made to be extended: until its decay begins, the rate does not
depend on the steps. The loop saves RUN/stable, the run as its decay began (a run folder of its
own). A finished wsd run resumed with more steps continues from RUN/stable: the stable phase goes
on and the decay runs again at the new end, with no jump. The run it had finished is kept as
RUN/decayed-STEP (a copy: it samples, evaluates and draws like any run), so nothing is lost.
"""

import os
import shutil

from microgpt import checkpoint
from microgpt.config import decay_start, learning_rate

STABLE = "stable"  # RUN/stable: a wsd run as its decay began
SCHEDULE = ("steps", "lr", "lr_schedule", "warmup_steps", "decay_frac")


def is_decay_start(train, done):
    """Whether the steps done so far end a wsd run's stable phase (RUN/stable is saved then)."""
    return train.lr_schedule == "wsd" and done == decay_start(train) and done < train.steps


def continue_from(out, ckpt, train, note):
    """The checkpoint a resumed run goes on from, under its TrainConfig `train` (see above)."""
    old, s = ckpt.train, ckpt.step
    if s == 0 or all(getattr(old, k) == getattr(train, k) for k in SCHEDULE):
        return ckpt
    stable = os.path.join(out, STABLE)
    if (old.lr_schedule == train.lr_schedule == "wsd" and s > decay_start(old) and train.steps > old.steps
            and checkpoint.exists(stable)):
        ckpt_stable = checkpoint.load(stable)
        if ckpt_stable.step == decay_start(old) <= decay_start(train):
            kept = os.path.join(out, f"decayed-{s}")
            if not os.path.exists(kept):
                shutil.copytree(os.path.join(out, checkpoint.CKPT), os.path.join(kept, checkpoint.CKPT))
                if os.path.exists(os.path.join(out, "metrics.jsonl")):
                    shutil.copy2(os.path.join(out, "metrics.jsonl"), kept)
            note(f"continuing from {stable} (step {ckpt_stable.step}, before the decay): the stable phase goes on "
                 f"and the decay runs again from step {decay_start(train)}; the run as it ended at step {s} is "
                 f"kept in {kept}")
            return ckpt_stable
    then, now = learning_rate(old, s - 1), learning_rate(train, s)
    if abs(now - then) > 0.1 * max(abs(then), abs(now)):
        note(f"the new schedule ({train.lr_schedule}, {train.steps} steps) moves the learning rate under the run: "
             f"{then:.3g} at step {s}, {now:.3g} from here on, so the loss may jump; a --lr-schedule wsd run can "
             f"be made longer without one")
    return ckpt
