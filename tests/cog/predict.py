# A small Cog predictor for the tests that run Cog's real webhook sender (coglet) against the
# receiver: it streams `steps` outputs, logging a line before each, and fails on request.
import time
from typing import Iterator

from cog import BasePredictor, Input


class Predictor(BasePredictor):
    def predict(
        self,
        steps: int = Input(default=3),
        delay: float = Input(default=0.0),
        fail: bool = Input(default=False),
    ) -> Iterator[str]:
        # Cog's Metrics API: dotted names nest, and values may be any JSON.
        self.record_metric("timing.inference", 0.25)
        self.record_metric("model_name", "tiny")
        self.record_metric("flags", [True, False])
        self.record_metric("cached", True)
        for i in range(steps):
            print(f"step {i}", flush=True)
            if delay:
                time.sleep(delay)
            yield f"out-{i}"
        if fail:
            raise RuntimeError("asked to fail")
