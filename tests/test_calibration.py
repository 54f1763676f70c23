"""The front end and the loaders of the user's data, including every refusal."""

import numpy as np
import pytest

from helpers import write_wav

from espdl_stream.calibration import DataError, FbankConfig, fbank, load_features, require_clips, synthetic_features
from espdl_stream.calibration.frontend import mel_filterbank


def test_fbank_shape_and_determinism():
    config = FbankConfig()
    audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    a, b = fbank(audio, config), fbank(audio, config)
    assert a.shape == (40, 1 + (16000 - 400) // 160)
    assert np.array_equal(a, b) and np.isfinite(a).all()


def test_fbank_puts_a_tone_in_the_right_mel_bin():
    config = FbankConfig()
    t = np.arange(16000) / 16000
    features = fbank(np.sin(2 * np.pi * 1000 * t), config)
    bins = mel_filterbank(config)
    expected = int(np.argmax(bins[:, int(1000 / (16000 / 512))]))
    assert int(np.bincount(features.argmax(axis=0)).argmax()) == expected


def test_synthetic_features_are_reproducible_and_speech_like():
    a, b = synthetic_features(4, 96, seed=3), synthetic_features(4, 96, seed=3)
    assert a.shape == (4, 40, 96) and np.array_equal(a, b)
    assert not np.array_equal(a, synthetic_features(4, 96, seed=4))
    assert a.max() - a.min() > 10  # speech spans a wide dynamic range in log-mel


def test_loads_wav_folder_and_windowing(tmp_path):
    rng = np.random.default_rng(1)
    write_wav(tmp_path / "a.wav", 0.1 * rng.standard_normal(16000 * 2))
    write_wav(tmp_path / "b.wav", 0.1 * rng.standard_normal(16000))
    clips = load_features(tmp_path, frames=96)
    assert clips.shape[1:] == (40, 96) and clips.dtype == np.float32
    assert len(clips) == 2 + 1  # 2 s give two windows of 96 frames, 1 s gives one


def test_loads_npy_and_npz(tmp_path):
    arr = np.random.default_rng(0).standard_normal((3, 40, 100)).astype(np.float32)
    np.save(tmp_path / "batch.npy", arr)
    assert load_features(tmp_path / "batch.npy", 96).shape == (3, 40, 96)
    np.savez(tmp_path / "set.npz", a=arr[0], b=arr[1])
    assert load_features(tmp_path / "set.npz", 50).shape == (4, 40, 50)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda d: None, "no .wav, .npy or .npz files"),
        (lambda d: (d / "x.wav").write_bytes(b"not audio at all"), "not a readable PCM WAV"),
        (lambda d: np.save(d / "x.npy", np.full((40, 100), np.nan, np.float32)), "NaN or Inf"),
        (lambda d: np.save(d / "x.npy", np.ones((13, 100), np.float32)), r"expected \[40 mel bins, frames\]"),
        (lambda d: np.save(d / "x.npy", np.random.default_rng(0).standard_normal((40, 50))), "shorter than the offline length"),
    ],
)
def test_bad_data_is_refused_with_one_clear_line(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(DataError, match=message) as e:
        load_features(tmp_path, frames=96)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "array,message",
    [
        (np.full((40, 100), 1e30), "values reach 1e[+]30, beyond what any audio front end gives"),
        (np.full((40, 100), -15.94), "every value is -15.94 [(]silence or padding, no signal[)]"),
        (np.random.default_rng(0).standard_normal((40, 100)) * 1e-6, "values span only"),
        (np.array([[np.inf] + [0.0] * 99] * 40), "NaN or Inf"),
        (np.zeros((40, 100), np.complex64), "values of type complex64, expected real numbers"),
        (np.ones((40, 100), bool), "values of type bool"),
        (np.ones(100), r"shape \[100\], expected \[40 mel bins, frames\]"),
        (np.ones((2, 2, 40, 100)), r"shape \[2, 2, 40, 100\]"),
        (np.ones((40, 0)), "empty"),
    ],
)
def test_data_no_front_end_makes_is_refused(tmp_path, array, message):
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(DataError, match=message) as e:
        load_features(tmp_path / "x.npy", frames=96)
    assert "\n" not in str(e.value)


def test_one_source_without_signal_is_named_among_good_ones(tmp_path):
    rng = np.random.default_rng(0)
    write_wav(tmp_path / "a.wav", 0.1 * rng.standard_normal(16000 * 2))
    write_wav(tmp_path / "b.wav", np.zeros(16000 * 2))  # digital silence: every frame at the log floor
    with pytest.raises(DataError, match="b.wav: every value is"):
        load_features(tmp_path, frames=96)


def test_audio_at_another_rate_is_refused_not_resampled(tmp_path):
    write_wav(tmp_path / "b.wav", 0.1 * np.random.default_rng(1).standard_normal(16000), rate=8000)
    with pytest.raises(DataError, match="8000 Hz audio; the front end takes 16000 Hz: convert it first"):
        load_features(tmp_path, frames=96)


@pytest.mark.parametrize("block_frames", [1, 7, 100])
def test_wav_features_block_by_block_equal_the_whole_file(tmp_path, block_frames):
    """Blocks are the front end on sample ranges covering whole frames, the rest carried over: the same frames as
    the whole file, each from the same samples (equal here; the bound allows a BLAS that sums a different number of
    rows in another order one float32 step apart; a frame off by one sample differs by far more)."""
    from espdl_stream.calibration.loaders import read_wav, wav_features

    rng = np.random.default_rng(2)
    write_wav(tmp_path / "a.wav", 0.1 * rng.standard_normal(16000 * 3 + 123))
    samples, _ = read_wav(tmp_path / "a.wav")
    whole = fbank(samples)
    blocks = list(wav_features(tmp_path / "a.wav", block_frames=block_frames))
    assert max(b.shape[1] for b in blocks) <= block_frames + 2  # at most the frames whose samples one read completes
    joined = np.concatenate(blocks, axis=1)
    assert joined.shape == whole.shape == (40, 1 + (16000 * 3 + 123 - 400) // 160)
    assert np.abs(joined - whole).max() <= 1e-5


def test_a_long_recording_takes_bounded_memory(tmp_path):
    """Five minutes of audio: the whole file's front end would allocate about 500 MB at once; block by block
    stays under 30 MB whatever the length."""
    import tracemalloc

    from espdl_stream.calibration.loaders import feature_stream

    write_wav(tmp_path / "long.wav", 0.1 * np.random.default_rng(3).standard_normal(16000 * 300))
    tracemalloc.start()
    try:
        frames, blocks = feature_stream(tmp_path / "long.wav")
        total = sum(b.shape[1] for b in blocks)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == frames == 1 + (16000 * 300 - 400) // 160
    assert peak < 30e6, f"{peak / 1e6:.0f} MB"


def test_missing_path_and_too_few_clips(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_features(tmp_path / "nope", 96)
    with pytest.raises(DataError, match="need at least 32"):
        require_clips(np.zeros((3, 40, 96), np.float32), 32, "calib")


def test_fbank_agrees_with_kaldi_native_fbank():
    """The reference front end, dither 0: same frames; log-mel within 1e-3 (kaldi computes in float32: measured
    3.8e-4 here, in near-silent frames, and 5.6e-5 on a recorded pocketsphinx utterance)."""
    knf = pytest.importorskip("kaldi_native_fbank")
    from espdl_stream.calibration.synthetic import synth_utterance

    config = FbankConfig()
    audio = synth_utterance(np.random.default_rng(3), 1.2, config.sample_rate) * 32768
    options = knf.FbankOptions()
    frame = options.frame_opts
    frame.dither, frame.samp_freq, frame.window_type = 0, config.sample_rate, config.window
    frame.frame_length_ms, frame.frame_shift_ms = config.frame_length_ms, config.frame_shift_ms
    frame.preemph_coeff, frame.remove_dc_offset, frame.snip_edges = config.preemphasis, True, True
    options.mel_opts.num_bins, options.mel_opts.low_freq, options.mel_opts.high_freq = config.n_mels, config.low_hz, config.high_hz
    options.use_energy, options.use_log_fbank, options.use_power = False, True, True
    reference = knf.OnlineFbank(options)
    reference.accept_waveform(config.sample_rate, audio.tolist())
    reference.input_finished()
    expected = np.stack([reference.get_frame(i) for i in range(reference.num_frames_ready)]).T
    got = fbank(audio, config)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-3


# ---------------------------------------------------------------- ESP-DL's Fbank, re-implemented from its C++
# Written from reading esp-dl/audio (dl_fbank.cpp, dl_speech_features.hpp/.cpp, dl_audio_common.cpp at 12c0616),
# step by step in float32 as the chip computes, from its `SpeechFeatureConfig` (our metadata's `frontend`).
F32 = np.float32


def _espdl_hz2mel(hz):  # 1127.0 * logf(1.0 + x / 700.0): logf of a float, scaled in double, stored as float
    return F32(1127.0 * np.log(F32(1.0 + np.float64(hz) / 700.0)))


def _espdl_window(kind: str, n: int) -> np.ndarray:  # win_func_init
    a = 2.0 * np.pi / (n if kind == "hann" else n - 1)  # double a = 2.0f * M_PI / (win_len - 1)
    arg = (a * np.arange(n)).astype(F32)  # cosf takes a float
    if kind == "povey":
        return np.power(F32(0.5) - F32(0.5) * np.cos(arg), F32(0.85))
    if kind in ("hanning", "hann"):
        return F32(0.5) - F32(0.5) * np.cos(arg)
    if kind == "hamming":
        return F32(0.54) - F32(0.46) * np.cos(arg)
    raise AssertionError(f"window {kind} not re-implemented here")


def _espdl_mel_filters(nfft: int, nfilter: int, low: int, high: int, rate: int) -> list[tuple[int, np.ndarray]]:
    """mel_filter_init: per filter, its first bin and its coefficients (the bins where min(slopes) > 0)."""
    width = nfft // 2 + 1
    lowmel, highmel = _espdl_hz2mel(F32(low)), _espdl_hz2mel(F32(high if high > low else rate // 2))
    edges = [F32(F32(F32(highmel - lowmel) / F32(nfilter + 1)) * F32(i)) + lowmel for i in range(nfilter + 2)]
    nyquist = F32(rate / 2.0)
    bin_mel = [_espdl_hz2mel(F32(F32(i) * nyquist) / F32(width - 1)) for i in range(width)]
    filters = []
    for i in range(nfilter):
        start, coeffs = -1, []
        for j in range(1, width):  # bands_to_zero = 1: the DC bin never counts
            lower = F32(bin_mel[j] - edges[i]) / F32(edges[i + 1] - edges[i])
            upper = F32(edges[i + 2] - bin_mel[j]) / F32(edges[i + 2] - edges[i + 1])
            if lower > 0 and start == -1:
                start = j
            if min(lower, upper) > 0:
                coeffs.append(min(lower, upper))
        filters.append((start, np.array(coeffs, F32)))
    return filters


def espdl_fbank(pcm: np.ndarray, cfg: dict) -> np.ndarray:
    """SpeechFeatureBase::process(const int16_t *) with Fbank::process_frame: [frames, num_mel_bins] float32."""
    win_len = cfg["frame_length"] * cfg["sample_rate"] // 1000
    step = cfg["frame_shift"] * cfg["sample_rate"] // 1000
    nfft = 1 << (win_len - 1).bit_length()  # next_power_of_2
    win = _espdl_window(cfg["window_type"], win_len)
    filters = _espdl_mel_filters(nfft, cfg["num_mel_bins"], int(cfg["low_freq"]), int(cfg["high_freq"]), cfg["sample_rate"])
    alpha = F32(cfg["preemphasis"])
    out = []
    for t in range(1 + (len(pcm) - win_len) // step):  # get_frame_num: snip edges
        x = pcm[t * step : t * step + win_len].astype(F32) / F32(32768.0)
        if cfg["remove_dc_offset"]:
            x = x - np.add.accumulate(x, dtype=F32)[-1] / F32(win_len)  # a float sum, in order
        if alpha > 1e-7:  # apply_preemphasis with prev = x[0] (after DC removal)
            x = np.concatenate([[x[0] - x[0] * alpha], x[1:] - x[:-1] * alpha]).astype(F32)
        x = np.concatenate([x * win, np.zeros(nfft - win_len, F32)])
        spectrum = np.fft.rfft(x)  # dl_rfft_f32_run, then compute_spectrum (power)
        power = (spectrum.real.astype(F32) ** 2 + spectrum.imag.astype(F32) ** 2).astype(F32)
        mel = np.array([np.dot(c, power[s : s + len(c)]) for s, c in filters], F32)  # mel_dotprod
        out.append(np.log(np.maximum(mel, F32(cfg["log_epsilon"]))))  # use_log_fbank == 1
    return np.stack(out).astype(F32)


def _examples_pcm() -> np.ndarray:
    import wave
    from pathlib import Path

    examples = Path(__file__).resolve().parent.parent / "examples"
    parts = []
    for word in ("yes", "go", "stop"):
        with wave.open(str(examples / f"{word}.wav"), "rb") as f:
            parts.append(np.frombuffer(f.readframes(f.getnframes()), "<i2"))
    return np.concatenate(parts)


def test_fbank_agrees_with_espdls_fbank_algorithm():
    """Our front end against ESP-DL's algorithm (float32, as the chip runs it) on the shipped recordings: the mel
    filters cover the same bins, and the log-mel features agree within 1e-3 (measured: 4.7e-5 at most, 2.7e-6 on
    average: float32 against float64 arithmetic). Checked once by hand, not here (ESP-DL's files are not shipped):
    this re-implementation against ESP-DL's own torchaudio-made test cases (test_apps/dl_audio) within 4.3e-4."""
    from espdl_stream.calibration.frontend import mel_filterbank

    config = FbankConfig()
    cfg = config.to_dict()
    ours = mel_filterbank(config)
    for row, (start, coeffs) in zip(ours, _espdl_mel_filters(config.n_fft, config.n_mels, config.low_hz,
                                                             config.high_hz, config.sample_rate)):
        assert np.nonzero(row)[0].tolist() == list(range(start, start + len(coeffs)))
        assert np.abs(row[start : start + len(coeffs)] - coeffs).max() < 1e-5
    pcm = _examples_pcm()
    expected = espdl_fbank(pcm, cfg)
    got = fbank(pcm / 32768.0, config).T
    assert got.shape == expected.shape == (1 + (len(pcm) - 400) // 160, 40)
    difference = np.abs(got - expected)
    assert difference.max() < 1e-3 and difference.mean() < 1e-4


@pytest.mark.parametrize("window", ["hanning", "hann", "hamming"])
def test_every_window_agrees_with_espdl(window):
    config = FbankConfig(window=window, n_mels=26, low_hz=80, high_hz=8000)
    pcm = _examples_pcm()[:16000]
    assert np.abs(fbank(pcm / 32768.0, config).T - espdl_fbank(pcm, config.to_dict())).max() < 1e-3


def test_frontend_refuses_what_espdl_cannot_express():
    for bad, message in ((dict(frame_length_ms=25.5), "whole milliseconds"), (dict(window="kaiser"), "ESP-DL has"),
                         (dict(high_hz=9000), "Nyquist"), (dict(preemphasis=1.0), r"\[0, 1\)")):
        with pytest.raises(ValueError, match=message):
            FbankConfig(**bad)
    assert FbankConfig().n_fft == 512 and FbankConfig(frame_length_ms=32).n_fft == 512
