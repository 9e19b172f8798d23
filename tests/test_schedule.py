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


def test_cosine_is_the_od_apis_cosine_decay_with_warmup():
    """OD API learning_schedules.cosine_decay_with_warmup (learning_rate_base 0.4, total 800k,
    warmup_learning_rate 0.13333, 2000 warm-up steps), scaled from batch 512 to 64."""
    import math
    config = ScheduleConfig(kind="cosine", base_learning_rate=0.4, base_batch_size=512,
                            warmup_steps=2000, warmup_start=0.13333 / 0.4)
    schedule = paper_schedule(config, global_batch_size=64, steps_per_epoch=100,
                              total_steps=800000)
    base, start = 0.4 / 8, 0.13333 / 8

    def od_api(t):
        if t < 2000:
            return start + (base - start) * t / 2000
        return 0.5 * base * (1 + math.cos(math.pi * (t - 2000) / (800000 - 2000)))
    for t in (0, 1000, 1999, 2000, 100000, 401000, 799999, 800000):
        assert float(schedule(t)) == pytest.approx(od_api(t), rel=1e-5, abs=1e-9), t


def test_poly_is_deeplabs_schedule_with_slow_start():
    """DeepLab train_utils.get_model_learning_rate, learning_policy poly (power 0.9, decay_steps
    0: training_number_of_steps - slow_start_step), with a linear slow start (burn-in 'linear')
    of 500 steps from 0.1 x the rate."""
    config = ScheduleConfig(kind="poly", base_learning_rate=0.01, base_batch_size=8,
                            warmup_steps=500, warmup_start=0.1, poly_power=0.9)
    schedule = paper_schedule(config, global_batch_size=8, steps_per_epoch=10,
                              total_steps=10000)

    def deeplab(t):
        decayed = 0.01 * (1 - min(max(t - 500, 0), 9500) / 9500) ** 0.9
        return 0.001 + (0.01 - 0.001) * t / 500 if t < 500 else decayed
    for t in (0, 250, 499, 500, 5000, 9999, 10500):
        assert float(schedule(t)) == pytest.approx(deeplab(t), rel=1e-5, abs=1e-9), t
    with pytest.raises(ValueError, match="total steps"):
        paper_schedule(config, 8, 10)
    with pytest.raises(ValueError, match="schedule must be one of"):
        paper_schedule(ScheduleConfig(kind="step"), 8, 10, 100)
