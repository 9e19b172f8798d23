import math

import pytest
import tf_keras

from mobilenet_v3.training.schedule import ScheduleConfig, WarmupExponentialDecay, paper_schedule


def test_paper_schedule_at_chosen_steps():
    # Global batch 1024 -> 0.1 * 1024 / 4096 = 0.025; 1000 steps per epoch:
    # 5 warm-up epochs (5000 steps), x0.99 every 3 epochs (3000 steps), staircase.
    schedule = paper_schedule(ScheduleConfig(), global_batch_size=1024, steps_per_epoch=1000)
    base = 0.025
    at_warmup_end = base * 0.99 ** math.floor(5000 / 3000)
    expected = {
        0: 0.0,
        2500: at_warmup_end / 2,                  # halfway through the linear ramp
        5000: at_warmup_end,
        5999: base * 0.99,                        # staircase: still one decay
        6000: base * 0.99 ** 2,
        300_000: base * 0.99 ** 100,              # 300 epochs in
    }
    for step, lr in expected.items():
        assert float(schedule(step)) == pytest.approx(lr, rel=1e-5), step


def test_without_warmup_and_linear_scaling():
    config = ScheduleConfig(warmup_epochs=0)
    schedule = paper_schedule(config, global_batch_size=4096, steps_per_epoch=10)
    assert float(schedule(0)) == pytest.approx(0.1)
    assert float(schedule(29)) == pytest.approx(0.1)
    assert float(schedule(30)) == pytest.approx(0.099)
    assert float(paper_schedule(config, 128, 10)(0)) == pytest.approx(0.1 * 128 / 4096)


def test_schedule_serializes():
    schedule = paper_schedule(ScheduleConfig(), global_batch_size=256, steps_per_epoch=50)
    clone = WarmupExponentialDecay.from_config(schedule.get_config())
    for step in (0, 100, 250, 1000):
        assert float(clone(step)) == pytest.approx(float(schedule(step)))
    # registered: Keras can (de)serialize it inside a saved optimizer config
    restored = tf_keras.optimizers.schedules.deserialize(
        tf_keras.optimizers.schedules.serialize(schedule))
    assert isinstance(restored, WarmupExponentialDecay)
    assert float(restored(1000)) == pytest.approx(float(schedule(1000)))


def test_bad_schedule_arguments():
    with pytest.raises(ValueError, match="global_batch_size"):
        paper_schedule(ScheduleConfig(), global_batch_size=0, steps_per_epoch=10)
