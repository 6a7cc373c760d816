"""The renderer: the audio a track's controls describe, mastered to its target loudness.

:func:`render_track` builds a beat grid (:func:`beat_times`), renders the parts
(harmony, bass, melody, drums, sung voice, spoken segments, crowd, room reverb) from
wavetable oscillators and filtered noise, mixes them and masters the mix
(:func:`master`: gain to the target loudness, measured with
:func:`audioreg.data.loudness.integrated_loudness`, and a soft limiter).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.signal

from ..data.loudness import integrated_loudness
from .controls import target_loudness

_TABLE_SIZE = 4096
_SCALES = {1: (0, 2, 4, 5, 7, 9, 11), 0: (0, 2, 3, 5, 7, 8, 10)}
#: Chord progressions, 4 bars of (root offset from the tonic, third in semitones): the
#: tonic chord (third and fifth doubled) in 3 bars of 4, with IV or V (iv, v in minor), so the tonic
#: triad dominates the chroma. The bass holds the tonic on downbeats; drums are unpitched.
_PROGRESSIONS = {
    1: (((0, 4), (0, 4), (5, 4), (0, 4)), ((0, 4), (0, 4), (7, 4), (0, 4)), ((0, 4), (5, 4), (0, 4), (0, 4))),
    0: (((0, 3), (0, 3), (5, 3), (0, 3)), ((0, 3), (0, 3), (7, 3), (0, 3)), ((0, 3), (5, 3), (0, 3), (0, 3))),
}
#: Beats (0-based, within the bar) that get the kick+bass, and the snare, per meter.
KICK_BEATS = {3: (0,), 4: (0, 2), 5: (0, 3), 7: (0, 2, 4)}
SNARE_BEATS = {3: (1, 2), 4: (1, 3), 5: (2, 4), 7: (1, 3, 5)}
#: Gain of a chord strike / bass note on the downbeat and on the other beats.
DOWNBEAT_GAIN, OTHER_BEAT_GAIN = 1.0, 0.55
#: Formants (Hz) of sung and spoken vowels; bandwidths 80, 100, 130 Hz; gains 1, .5, .25.
_VOWELS = {
    "a": (800.0, 1150.0, 2800.0),
    "e": (400.0, 2100.0, 2800.0),
    "i": (300.0, 2300.0, 3000.0),
    "o": (450.0, 800.0, 2830.0),
    "u": (330.0, 850.0, 2400.0),
}
_FORMANT_BW = (80.0, 100.0, 130.0)
_FORMANT_GAIN = (1.0, 0.5, 0.25)
_SPEECH_SLOT_S = 3.0  # spoken segments fill 2.6 s of a 3 s slot
_CEILING = 0.97  # sample peak after the limiter



def _midi_hz(m: float) -> float:
    return 440.0 * 2.0 ** ((m - 69.0) / 12.0)


def _wavetable(amps: np.ndarray) -> np.ndarray:
    """One period (``_TABLE_SIZE`` samples) of ``sum_k amps[k-1] sin(2 pi k x)``."""
    spec = np.zeros(_TABLE_SIZE // 2 + 1, dtype=complex)
    spec[1 : len(amps) + 1] = -0.5j * _TABLE_SIZE * np.asarray(amps, dtype=float)
    table = np.fft.irfft(spec, n=_TABLE_SIZE)
    return table / (np.max(np.abs(table)) + 1e-12)


def _osc(table: np.ndarray, f0: float, n: int, sr: int, phase0: float = 0.0) -> np.ndarray:
    """Wavetable oscillator (nearest sample; table size is a power of 2)."""
    idx = (np.arange(n) * (f0 / sr * _TABLE_SIZE) + phase0 * _TABLE_SIZE).astype(np.int64)
    return table[idx & (_TABLE_SIZE - 1)]


def _fade(x: np.ndarray, sr: int, seconds: float = 0.005) -> np.ndarray:
    m = min(len(x), max(1, int(seconds * sr)))
    x[-m:] *= np.linspace(1.0, 0.0, m)
    return x


def _tone(midi: float, *, n: int, sr: int, acoustic: float, brightness: float, rng: np.random.Generator) -> np.ndarray:
    """A pitched note: ``acoustic`` blends a struck/plucked and a synthetic timbre."""
    f0 = _midi_hz(midi)
    K = int(max(1, min(30, 0.45 * sr / f0)))
    k = np.arange(1, K + 1, dtype=float)
    t = np.arange(n) / sr
    out = np.zeros(n)
    if acoustic > 0:
        slope = 1.3 + 1.7 * (1.0 - brightness)
        bright = _osc(_wavetable(k**-slope), f0, n, sr)
        dark = _osc(_wavetable(k ** -(slope + 1.5)), f0, n, sr)
        tau_b = 0.10 * (220.0 / f0) ** 0.3
        tau_d = float(np.clip(0.9 * (220.0 / f0) ** 0.4, 0.3, 2.0))
        attack = np.minimum(1.0, t / 0.003)
        body = (bright * np.exp(-t / tau_b) + 0.7 * dark * np.exp(-t / tau_d)) * attack
        m = min(n, int(0.012 * sr))
        click = rng.standard_normal(m) * np.exp(-np.arange(m) / (0.002 * sr)) * 0.3
        body[:m] += click
        out += acoustic * body / (np.max(np.abs(body)) + 1e-12)
    if acoustic < 1:
        fc = 500.0 * 2.0 ** (4.2 * brightness)
        syn_table = _wavetable(np.exp(-k * f0 / fc) / k)
        syn = _osc(syn_table, f0 * 1.003, n, sr) + _osc(syn_table, f0 / 1.003, n, sr, phase0=0.37)
        env = np.minimum(1.0, t / 0.015) * (0.85 + 0.15 * np.exp(-t / 0.2))
        syn *= env
        out += (1.0 - acoustic) * syn / (np.max(np.abs(syn)) + 1e-12)
    return _fade(out, sr)


def _place(bus: np.ndarray, sig: np.ndarray, t: float, sr: int, gain: float = 1.0) -> None:
    i = int(round(t * sr))
    if i >= len(bus) or i < 0:
        return
    m = min(len(sig), len(bus) - i)
    bus[i : i + m] += gain * sig[:m]


@functools.lru_cache(maxsize=256)
def _butter(kind: str, freq, sr: int, order: int) -> tuple[tuple[float, ...], ...]:
    nyq = 0.5 * sr
    freq = tuple(min(f, 0.9 * nyq) for f in freq) if isinstance(freq, tuple) else min(freq, 0.9 * nyq)
    return tuple(map(tuple, scipy.signal.butter(order, freq, btype=kind, fs=sr, output="sos")))


def _sos(kind: str, freq, sr: int, order: int = 2, dtype=np.float64) -> np.ndarray:
    """Butterworth second-order sections (designs cached); cutoffs capped at 0.9 * Nyquist."""
    freq = tuple(float(f) for f in freq) if np.ndim(freq) else float(freq)
    return np.array(_butter(kind, freq, int(sr), int(order)), dtype=dtype)


#: Noise draws per drum; each hit picks one (more for the drums with low-frequency energy).
DRUM_VARIANTS: dict[str, int] = {"kick": 8, "snare": 8, "hat": 4, "cymbal": 2}


def _drum(name: str, *, sr: int, acoustic: float, brightness: float, rng: np.random.Generator) -> np.ndarray:
    """One kick, snare, hat or accent-cymbal template (an acoustic/electronic blend).

    All are unpitched (filtered noise), so drums add a flat floor to the chroma instead of
    pulling it toward some pitch class.
    """
    def t_(sec):
        return np.arange(int(sec * sr)) / sr

    def noise(kind, freq, m, order=2):
        return scipy.signal.sosfilt(_sos(kind, freq, sr, order=order), rng.standard_normal(m))

    if name == "kick":
        t = t_(0.8)
        tau = acoustic * 0.12 + (1 - acoustic) * 0.3
        x = noise("lowpass", 110.0, len(t), order=4) * np.exp(-t / tau) * np.minimum(1.0, t / 0.002)
        x /= np.max(np.abs(x))
        m = int(0.006 * sr)
        x[:m] += 0.25 * noise("bandpass", (1500.0, 5000.0), m) / 3.0 * np.exp(-np.arange(m) / (0.0015 * sr))
    elif name == "snare":
        t = t_(0.35)
        wires = noise("bandpass", (900.0, 7000.0), len(t))
        body = noise("bandpass", (150.0, 400.0), len(t))
        snare = wires * np.exp(-t / 0.12) + 1.5 * body * np.exp(-t / 0.05)
        clap_env = sum(np.exp(-np.clip(t - d, 0, None) / 0.012) * (t >= d) for d in (0.0, 0.011, 0.023))
        clap = wires * (clap_env + 0.6 * np.exp(-t / 0.18))
        x = acoustic * snare / np.max(np.abs(snare)) + (1 - acoustic) * clap / np.max(np.abs(clap))
    elif name == "hat":
        t = t_(0.15)
        x = noise("highpass", 6000.0 + 3000.0 * brightness, len(t)) * np.exp(-t / (0.02 + 0.03 * acoustic))
    elif name == "cymbal":
        t = t_(0.9)
        x = noise("highpass", 4000.0, len(t)) * np.exp(-t / 0.35)
    else:
        raise ValueError(f"unknown drum {name!r}")
    return _fade(x / (np.max(np.abs(x)) + 1e-12), sr)


def _drum_bank(*, sr: int, acoustic: float, brightness: float, rng: np.random.Generator) -> dict:
    """:data:`DRUM_VARIANTS` noise draws of each drum, so repeated hits do not add up one
    fixed random spectrum (which would bias the chroma)."""
    return {name: [_drum(name, sr=sr, acoustic=acoustic, brightness=brightness, rng=rng) for _ in range(k)]
            for name, k in DRUM_VARIANTS.items()}


def _formant_filter(x: np.ndarray, formants, sr: int) -> np.ndarray:
    y = np.zeros_like(x)
    for f, bw, g in zip(formants, _FORMANT_BW, _FORMANT_GAIN):
        if f >= 0.45 * sr:
            continue
        w0 = 2 * np.pi * f / sr
        alpha = np.sin(w0) * bw / (2 * f)
        b = np.array([alpha, 0.0, -alpha])
        a = np.array([1 + alpha, -2 * np.cos(w0), 1 - alpha])
        y += g * scipy.signal.lfilter(b, a, x)
    return y


def _rms(x: np.ndarray) -> float:
    """RMS over the samples that are not (near) silent."""
    x2 = np.square(x)
    count = np.count_nonzero(x2 > 1e-12)
    return float(np.sqrt(x2.sum() / count)) if count else 0.0


def _normalized(x: np.ndarray) -> np.ndarray:
    r = _rms(x)
    return x * np.asarray(1.0 / r, dtype=x.dtype) if r > 0 else x


def _pan_gains(p: float, channels: int) -> tuple[float, ...]:
    """Constant-power pan gains, ``p`` in [-1 (left), 1 (right)]; (1,) for mono."""
    if channels == 1:
        return (1.0,)
    a = (p + 1.0) * np.pi / 4.0
    return (float(np.sqrt(2.0) * np.cos(a)), float(np.sqrt(2.0) * np.sin(a)))



def _soft_limit(y: np.ndarray, ceiling: float = _CEILING, knee: float = 0.6) -> np.ndarray:
    k = knee * ceiling
    r = ceiling - k
    a = np.abs(y)
    over = a > k
    y = y.copy()
    y[over] = np.sign(y[over]) * (k + r * np.tanh((a[over] - k) / r))
    return y


def master(x: np.ndarray, *, sr: int, target_db: float, iterations: int = 6) -> np.ndarray:
    """Gain to ``target_db`` integrated loudness, with a soft limiter keeping peaks <= 0.97.

    Parameters
    ----------
    x : np.ndarray [shape=(channels, n)]
    sr : int
    target_db : float
        Target loudness (dB LUFS); reached within a fraction of a dB unless the
        limiter cannot get there in ``iterations`` rounds.

    Returns
    -------
    y : np.ndarray [shape=(channels, n)]
    """
    y = np.asarray(x)
    for _ in range(iterations):
        level = integrated_loudness(y, sr=sr)
        if not np.isfinite(level):
            return y
        y = y * 10.0 ** ((target_db - level) / 20.0)
        if np.max(np.abs(y)) <= _CEILING:
            return y
        y = _soft_limit(y)
    return y


@dataclass(frozen=True)
class _Score:
    """The time grid and harmony one rendering works on."""

    sr: int
    n: int
    seconds: float
    beat_s: float
    times: np.ndarray  # beat onsets (s), before jitter
    pos: np.ndarray  # beat index within the bar
    bar: np.ndarray  # bar index of each beat
    meter: int
    tonic: int
    mode: int
    prog: tuple
    jitter_sd: float

    def chord(self, bar: int) -> tuple[int, int, tuple[int, int, int]]:
        """Root pitch class, third (3 or 4 semitones) and the triad's pitch classes of a bar."""
        off, third = self.prog[bar % len(self.prog)]
        root = (self.tonic + off) % 12
        return root, third, (root, (root + third) % 12, (root + 7) % 12)


def beat_times(controls: dict, *, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """The rendered beat grid (before timing jitter).

    Parameters
    ----------
    controls : dict
        From :func:`~audioreg.synth.controls.sample_controls` (``tempo``, ``meter``, ``offset_s``).
    seconds : float

    Returns
    -------
    times : np.ndarray [shape=(n_beats,)]
        Seconds; the first downbeat is at ``controls["offset_s"]``.
    position : np.ndarray [shape=(n_beats,)]
        Beat index within the bar, 0 = downbeat.
    """
    beat_s = 60.0 / controls["tempo"]
    k = np.arange(int(np.ceil((seconds - controls["offset_s"]) / beat_s)) + 1)
    t = controls["offset_s"] + k * beat_s
    keep = t < seconds
    return t[keep], (k % int(controls["meter"]))[keep]


def _jit(score: _Score, t: float, rng: np.random.Generator) -> float:
    if score.jitter_sd > 0:
        t = t + rng.normal(0.0, score.jitter_sd)
    return max(0.0, t)


def _render_harmony(score: _Score, get_tone, rng) -> tuple[np.ndarray, np.ndarray]:
    """Chords struck on every beat, bass on the kick beats; downbeats accented.

    The bass plays the tonic on every downbeat (a pedal) and the chord's root on the
    other kick beats.
    """
    sr, beat_s = score.sr, score.beat_s
    chords = np.zeros(score.n, dtype=np.float32)
    bass = np.zeros(score.n, dtype=np.float32)
    kicks = KICK_BEATS[score.meter]
    templates = {}
    for t, p, bar in zip(score.times, score.pos, score.bar):
        root, third, _ = score.chord(bar)
        if root not in templates:
            base = 48 + root
            voicing = [(base, 1.0), (base + third, 1.0), (base + 7, 1.0)]
            if root == score.tonic:  # third doubled above, fifth doubled (softer) below
                voicing += [(base + third + 12, 1.0), (base - 5, 0.5)]
            templates[root] = sum(g * get_tone(m, beat_s) for m, g in voicing)
        gain = DOWNBEAT_GAIN if p == 0 else OTHER_BEAT_GAIN
        _place(chords, templates[root], _jit(score, t, rng), sr, gain)
        if p in kicks:
            nxt = [k for k in kicks if k > p]
            span = ((nxt[0] if nxt else score.meter) - p) * beat_s
            bass_pc = score.tonic if p == 0 else root
            note = _fade(get_tone(36 + bass_pc, 3 * beat_s)[: max(1, int(span * sr))].copy(), sr, 0.01)
            _place(bass, note, _jit(score, t, rng), sr, gain)
    return chords, bass


def _render_melody(score: _Score, density: float, get_tone, rng) -> np.ndarray:
    """Melody on a 16th grid, each slot filled with probability (0.5 + 3.5 density) / 4.

    Pitches (MIDI 67-84) are drawn from the tonic triad (50 %), the bar's chord (30 %) or
    the scale (20 %), preferring small steps.
    """
    sr, beat_s = score.sr, score.beat_s
    melody = np.zeros(score.n, dtype=np.float32)
    p_fill = (0.5 + 3.5 * density) / 4.0
    slots = [(t + s * beat_s / 4.0, bar) for t, bar in zip(score.times, score.bar) for s in range(4)]
    filled = [x for x in slots if rng.random() < p_fill]
    scale_pcs = tuple((score.tonic + d) % 12 for d in _SCALES[score.mode])
    tonic_pcs = score.chord(0)[2]
    prev = 72
    for idx, (t, bar) in enumerate(filled):
        u = rng.random()
        pool = tonic_pcs if u < 0.5 else score.chord(bar)[2] if u < 0.8 else scale_pcs
        cands = np.array([m for m in range(67, 85) if m % 12 in pool])
        w = np.exp(-np.abs(cands - prev) / 4.0)
        prev = int(rng.choice(cands, p=w / w.sum()))
        dur = min(beat_s, (filled[idx + 1][0] - t) if idx + 1 < len(filled) else beat_s)
        note = _fade(get_tone(prev, beat_s)[: max(1, int(dur * sr))].copy(), sr)
        _place(melody, note, _jit(score, t, rng), sr, 0.8 + 0.2 * rng.random())
    return melody


def _render_drums(score: _Score, c: dict, rng) -> np.ndarray:
    """Kick (accented on the downbeat, with a cymbal), snare and hats per :data:`KICK_BEATS`."""
    sr, beat_s = score.sr, score.beat_s
    drums = np.zeros(score.n, dtype=np.float32)
    bank = _drum_bank(sr=sr, acoustic=float(c["acoustic"]), brightness=float(c["brightness"]), rng=rng)
    kicks, snares = KICK_BEATS[score.meter], SNARE_BEATS[score.meter]
    subdiv = 4 if c["density"] > 0.6 else 2

    def hit(name, t, gain):
        _place(drums, bank[name][int(rng.integers(len(bank[name])))], _jit(score, t, rng), sr, gain)

    for t, p in zip(score.times, score.pos):
        if p == 0:
            hit("kick", t, 1.0)
            hit("cymbal", t, 0.45)
        elif p in kicks:
            hit("kick", t, 0.6)
        if p in snares:
            hit("snare", t, 0.6)
        for s in range(subdiv):
            hit("hat", t + s * beat_s / subdiv, 0.22 if s == 0 else 0.14)
    return drums


def _render_voice(score: _Score, rng) -> np.ndarray:
    """Sung notes (2 bars on, 2 off): sawtooth source with glide and vibrato through vowel formants."""
    sr, beat_s = score.sr, score.beat_s
    voice = np.zeros(score.n, dtype=np.float32)
    sing = [(t, bar) for t, bar in zip(score.times, score.bar) if bar % 4 in (0, 1)]
    i, prev_f = 0, None
    while i < len(sing):
        t0, bar = sing[i]
        length = int(rng.choice([1, 2])) if i + 1 < len(sing) else 1
        pcs = score.chord(bar)[2]
        midi = int(rng.choice(np.array([m for m in range(57, 73) if m % 12 in pcs])))
        dur = length * beat_s
        tt = np.arange(int(dur * sr)) / sr
        f = np.full(len(tt), _midi_hz(midi))
        if prev_f is not None:
            g = np.minimum(1.0, tt / 0.05)
            f = prev_f * (1 - g) + f * g
        f *= 2.0 ** (0.25 / 12 * np.sin(2 * np.pi * 5.5 * tt) * np.minimum(1.0, tt / 0.3))
        prev_f = _midi_hz(midi)
        src = 2.0 * (np.cumsum(f / sr) % 1.0) - 1.0
        src = scipy.signal.lfilter([0.3], [1.0, -0.7], src) + 0.03 * rng.standard_normal(len(tt))
        sung = _formant_filter(src, _VOWELS["aeiou"[int(rng.integers(5))]], sr)
        env = np.minimum(1.0, tt / 0.04) * np.minimum(1.0, (dur - tt) / 0.06)
        _place(voice, sung * env, _jit(score, t0, rng), sr)
        i += length
    return voice


def _render_speech(score: _Score, share: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Spoken segments: noise-excited formant syllables (~5 per second, no pitch).

    Returns the speech and the gain (ducking) the music gets under it.
    """
    sr, n, seconds = score.sr, score.n, score.seconds
    speech = np.zeros(n, dtype=np.float32)
    ramp = 0.05
    edges_t, edges_g = [0.0], [1.0]
    n_slots = max(1, int(seconds // _SPEECH_SLOT_S))
    k = int(np.clip(round(share * n_slots), 1, n_slots))
    for slot in np.sort(rng.choice(n_slots, size=k, replace=False)):
        t = slot * _SPEECH_SLOT_S + 0.2
        end = min(seconds, t + _SPEECH_SLOT_S - 0.4)
        a, b = max(0.0, t - 0.15), min(seconds, end + 0.15)
        edges_t += [a, a + ramp, b - ramp, b]
        edges_g += [1.0, 1.0 - 0.7 * share, 1.0 - 0.7 * share, 1.0]
        syll = 0
        while t < end:
            d = rng.uniform(0.10, 0.22)
            tt = np.arange(int(d * sr)) / sr
            vowel = np.array(_VOWELS["aeiou"[int(rng.integers(5))]]) * rng.uniform(0.85, 1.2)
            env = np.sin(np.pi * tt / d) ** 2 * np.minimum(1.0, tt / 0.01)
            s = _formant_filter(rng.standard_normal(len(tt)), vowel, sr) * env
            if rng.random() < 0.6:  # a consonant burst
                mc = min(len(s), int(0.035 * sr))
                burst = scipy.signal.sosfilt(_sos("highpass", 3000.0, sr), rng.standard_normal(mc))
                s[:mc] += 0.15 * burst * np.exp(-np.arange(mc) / (0.01 * sr))
            _place(speech, s * rng.uniform(0.6, 1.0), t, sr)
            syll += 1
            pause = rng.uniform(0.1, 0.25) if syll % int(rng.integers(2, 5)) == 0 else 0.0
            t += d + rng.uniform(0.02, 0.07) + pause
    duck = np.interp(np.arange(n, dtype=np.float32) / np.float32(sr), edges_t, edges_g).astype(np.float32)
    return speech, duck


def _render_crowd(score: _Score, channels: int, rng) -> np.ndarray:
    """Crowd babble with slow swells, and applause (dense in the first and last 2.5 s)."""
    sr, n = score.sr, score.n
    crowd = np.zeros((channels, n), dtype=np.float32)
    rate = np.full(n, 1.5 / sr, dtype=np.float32)
    edge = int(min(2.5, score.seconds / 4) * sr)
    rate[:edge] = 25.0 / sr
    rate[n - edge :] = 25.0 / sr
    for ch in range(channels):
        bab = scipy.signal.sosfilt(_sos("bandpass", (300.0, 3000.0), sr, dtype=np.float32),
                                   rng.standard_normal(n, dtype=np.float32))
        slow = scipy.signal.sosfilt(_sos("lowpass", 1.5, sr, order=1), rng.standard_normal(n, dtype=np.float32))
        bab *= (0.6 + 0.4 * np.tanh(slow / (np.std(slow) + 1e-12))).astype(np.float32)
        del slow
        imp = (rng.random(n, dtype=np.float32) < rate) * rng.random(n, dtype=np.float32)
        env = scipy.signal.lfilter(np.array([0.3], dtype=np.float32),
                                   np.array([1.0, -np.exp(-1.0 / (0.015 * sr))], dtype=np.float32), imp)
        noise = scipy.signal.sosfilt(_sos("bandpass", (1000.0, 5000.0), sr, dtype=np.float32),
                                     rng.standard_normal(n, dtype=np.float32))
        crowd[ch] = 0.6 * _normalized(bab) + _normalized(env * noise)
    return crowd


def _reverb(mix: np.ndarray, amount: float, *, sr: int, rng) -> np.ndarray:
    """Room: exponentially decaying noise IR, RT60 = 0.25 + 2 amount s, one IR per channel.

    The wet path is band-passed (200 Hz - 6 kHz) and mixed at ``0.45 amount`` against a dry
    ``1 - 0.25 amount`` (at most -4 dB below the dry signal): a diffuse IR has a random
    frequency response, and a louder wet path would colour individual notes (and the chroma).
    """
    rt60 = 0.25 + 2.0 * amount
    m = int(min(rt60, 2.5) * sr)
    tt = np.arange(m) / sr
    wet = np.empty_like(mix)
    band = _sos("bandpass", (200.0, 6000.0), sr)
    for ch in range(mix.shape[0]):
        ir = scipy.signal.sosfilt(band, rng.standard_normal(m) * np.exp(-6.91 * tt / rt60))
        ir /= np.sqrt(np.sum(ir**2))
        wet[ch] = scipy.signal.fftconvolve(mix[ch], ir.astype(np.float32))[: mix.shape[1]]
    return (1.0 - 0.25 * amount) * mix + (0.45 * amount) * wet


def render_track(controls: dict, *, sr: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Render the audio a track's controls describe, mastered to its target loudness.

    Parts: chords struck on every beat (downbeat accented) and bass on the kick beats
    (a progression with the tonic chord in every other bar), a melody on a 16th-note
    grid (``0.5 + 3.5 * density`` notes per beat), drums (level ``beat``; accented
    downbeat with kick and cymbal), a sung voice (sawtooth source with vibrato through
    vowel formants, level ``vocal``), spoken segments (noise-excited formant syllables,
    ~5 per second, no pitch, ``speech`` share of the time, music ducked under them),
    crowd noise and applause (``crowd``) and room reverb (``reverb``). Every onset is
    jittered by ``3.5 % * (1 - regularity)`` of a beat; ``brightness`` sets harmonic
    roll-off and a mix low-pass; ``acoustic`` blends struck/plucked with synthetic
    timbres. The mix is gained (with a soft limiter) to :func:`~audioreg.synth.controls.target_loudness`.

    Parameters
    ----------
    controls : dict
        From :func:`~audioreg.synth.controls.sample_controls`; ``channels`` (1 or 2, default 2) is read if present.
    sr : int
        Sample rate (Hz).
    seconds : float
        Duration.
    rng : np.random.Generator
        Stream for the musical choices (melody, voicings, noises, jitter).

    Returns
    -------
    y : np.ndarray [shape=(channels, round(seconds * sr))], float32, peaks <= 0.97
    """
    c = controls
    n = int(round(seconds * sr))
    channels = int(c.get("channels", 2))
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels}")
    if n < 1:
        raise ValueError(f"seconds * sr must give at least one sample, got {seconds} * {sr}")
    times, pos = beat_times(c, seconds=seconds)
    mode = int(c["mode"])
    progs = _PROGRESSIONS[mode]
    beat_s = 60.0 / c["tempo"]
    score = _Score(
        sr=sr, n=n, seconds=float(seconds), beat_s=beat_s, times=times, pos=pos,
        bar=np.cumsum(pos == 0) - 1, meter=int(c["meter"]), tonic=int(c["tonic"]), mode=mode,
        prog=progs[int(rng.integers(len(progs)))], jitter_sd=0.035 * beat_s * (1.0 - float(c["regularity"])),
    )
    acoustic, brightness = float(c["acoustic"]), float(c["brightness"])
    cache: dict = {}

    def get_tone(midi: int, length: float) -> np.ndarray:
        if (midi, length) not in cache:
            cache[midi, length] = _tone(midi, n=max(1, int(length * sr)), sr=sr, acoustic=acoustic,
                                        brightness=brightness, rng=rng)
        return cache[midi, length]

    chords, bass = _render_harmony(score, get_tone, rng)
    melody = _render_melody(score, float(c["density"]), get_tone, rng)
    parts = [(chords, 1.0, -0.35), (bass, 0.7, 0.0), (melody, 0.7, 0.35)]
    if c["beat"] > 0.02:
        parts.append((_render_drums(score, c, rng), 1.4 * float(c["beat"]), 0.0))
    if c["vocal"] > 0:
        parts.append((_render_voice(score, rng), 1.3 * float(c["vocal"]), 0.0))
    mix = np.zeros((channels, n), dtype=np.float32)
    for x, g, p in parts:
        x = _normalized(x)
        for ch, pg in enumerate(_pan_gains(p, channels)):
            mix[ch] += np.float32(g * pg) * x
    del parts, chords, bass, melody, x
    fc = 2500.0 * 2.0 ** (2.7 * brightness)
    if fc < 0.45 * sr:
        mix = scipy.signal.sosfilt(_sos("lowpass", fc, sr, dtype=np.float32), mix, axis=-1)
    speech = None
    if c["speech"] > 0:
        speech, duck = _render_speech(score, float(c["speech"]), rng)
        mix *= duck
    music_rms = _rms(mix)
    if c["reverb"] > 0.01:
        mix = _reverb(mix, float(c["reverb"]), sr=sr, rng=rng)
    if speech is not None:
        mix += _normalized(speech) * np.float32(music_rms * (0.8 + 1.2 * c["speech"]))
    if c["crowd"] > 0:
        crowd = _render_crowd(score, channels, rng)
        mix += crowd * np.float32(music_rms * 0.9 * float(c["crowd"]) / (_rms(crowd) + 1e-12))
        del crowd
    del speech
    y = master(mix, sr=sr, target_db=target_loudness(c))
    return np.clip(y, -1.0, 1.0).astype(np.float32)
