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


def test_loads_wav_folder_resampling_and_windowing(tmp_path):
    rng = np.random.default_rng(1)
    write_wav(tmp_path / "a.wav", 0.1 * rng.standard_normal(16000 * 2))
    write_wav(tmp_path / "b.wav", 0.1 * rng.standard_normal(8000), rate=8000)  # resampled to 16 kHz
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
        (lambda d: np.save(d / "x.npy", np.zeros((13, 100), np.float32)), r"expected \[40 mel bins, frames\]"),
        (lambda d: np.save(d / "x.npy", np.zeros((40, 50), np.float32)), "shorter than the offline length"),
    ],
)
def test_bad_data_is_refused_with_one_clear_line(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(DataError, match=message) as e:
        load_features(tmp_path, frames=96)
    assert "\n" not in str(e.value)


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
