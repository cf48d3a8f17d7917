"""Training progress bar: epoch, step, loss terms, learning rate, samples/s and ETA."""
from __future__ import annotations

import sys
import time

from tqdm import tqdm


class Progress:
    def __init__(self, total_steps: int, done: int = 0, enabled: bool = True):
        self.bar = tqdm(total=total_steps, initial=done, disable=not enabled, dynamic_ncols=True,
                        unit="step", file=sys.stderr, mininterval=1.0)
        self.start = time.perf_counter()
        self.steps = 0

    def rate(self, samples_per_step: int) -> float:
        elapsed = time.perf_counter() - self.start
        return self.steps * samples_per_step / elapsed if elapsed > 0 else 0.0

    def update(self, epoch: int, epochs: int, loss: float, terms: dict, lr: float, samples_per_step: int) -> None:
        self.steps += 1
        parts = " ".join(f"{k}={v:.3f}" for k, v in terms.items())
        self.bar.set_description(f"epoch {epoch}/{epochs}", refresh=False)
        self.bar.set_postfix_str(f"loss={loss:.3f} {parts} lr={lr:.2e} {self.rate(samples_per_step):.1f} samples/s",
                                 refresh=False)
        self.bar.update(1)

    def note(self, message: str) -> None:
        self.bar.write(message)

    def close(self) -> None:
        self.bar.close()
