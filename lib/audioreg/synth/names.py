"""Names and ids: artist, album and track names, and 22-character base-62 track ids.

Invented from syllables and word lists, they exercise the text handling downstream:
Latin letters with diacritics that decompose under NFD, letters NFD keeps as they are,
and Japanese (katakana with dakuten, kanji). :func:`_track_name` says which titles to
write in NFD; the writer also writes one artist in six in NFD on every other track.
"""

from __future__ import annotations

import numpy as np

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

_SYLLABLES = ("ka", "lo", "mi", "ra", "ven", "tor", "sel", "dan", "bri", "mor", "ta", "nel", "quin", "zo",
              "fa", "ri", "lu", "gar", "pen", "sha", "vo", "ne", "tis", "ol", "ber", "cas", "dri", "em")
_ACCENTS = {"a": ("á", "å"), "e": ("é", "è"), "o": ("ö",), "u": ("ü",), "n": ("ñ",), "c": ("ç",)}
_KANA_VOICED = ("ガ", "ギ", "グ", "ゴ", "ザ", "ジ", "ズ", "ダ", "デ", "ド", "バ", "ビ", "ブ", "ボ")
_KANA = ("カ", "サ", "タ", "ナ", "マ", "ラ", "ミ", "ソ", "ヒ", "ル", "コ", "ネ", "ア", "リ")
_WORDS = ("Night", "River", "Glass", "Signal", "Echo", "Paper", "Lantern", "Orbit", "Velvet", "Harbor",
          "Static", "Meadow", "Copper", "Drift", "Ember", "Hollow", "Neon", "Satellite", "Window", "Winter",
          "Summer", "Tide", "Feather", "Circuit", "Garden", "Mirror", "Distance", "Thunder", "Silver", "Cloud",
          "Motel", "Highway", "Lullaby", "Parade", "Fever", "Quiet", "Golden", "Broken", "Little", "Electric")
#: Words with letters that decompose under NFD (é, ü, ñ, å, ç, ï ...).
_WORDS_ACCENTED = ("Café", "Réveil", "Über", "Mañana", "Déjà Vu", "Naïve", "Fiancée", "Brücke", "Élan",
                   "Año", "Façade", "Årstid", "Söndag", "Crème")
_WORDS_OTHER = ("Søndag", "Ørken", "Straße", "Łódź")  # non-ASCII letters that NFD keeps as they are
_WORDS_JA = ("夜の星", "雨音", "さくら", "ガラスの海", "ドライブ", "ブルー", "月と猫", "ビルの影")


def _cap(word: str) -> str:
    return word[:1].upper() + word[1:]


def _word(rng: np.random.Generator, k: int | None = None) -> str:
    k = int(rng.integers(2, 4)) if k is None else k
    return _cap("".join(_SYLLABLES[int(i)] for i in rng.integers(len(_SYLLABLES), size=k)))


def _accent(word: str, rng: np.random.Generator) -> str:
    """Replace one letter of ``word`` with an accented one that decomposes under NFD."""
    spots = [i for i, ch in enumerate(word.lower()) if ch in _ACCENTS]
    if not spots:
        return word + "é"
    i = spots[int(rng.integers(len(spots)))]
    options = _ACCENTS[word[i].lower()]
    ch = options[int(rng.integers(len(options)))]
    return word[:i] + (ch.upper() if word[i].isupper() else ch) + word[i + 1 :]


def _artist_name(kind: int, rng: np.random.Generator) -> str:
    """kind 0: ASCII; 1: Latin letters with diacritics (NFC); 2: Japanese (katakana with dakuten)."""
    if kind == 2:
        k = int(rng.integers(3, 5))
        chars = [(_KANA_VOICED if j == 0 or rng.random() < 0.3 else _KANA)[int(rng.integers(14))] for j in range(k)]
        return "".join(chars)
    style = int(rng.integers(4))
    a, b = _word(rng), _word(rng)
    if kind == 1:
        a = _accent(a, rng)
    return (f"The {a}s", f"{a} {b}", a, f"{a} & the {b}s")[style]


def _track_name(i: int, rng: np.random.Generator) -> tuple[str, bool]:
    """Track ``i``'s title and whether to write it in NFD (every 10th track, offset 7)."""
    words = [_WORDS[int(j)] for j in rng.integers(len(_WORDS), size=int(rng.integers(1, 4)))]
    nfd = i % 10 == 7
    if i % 5 == 2 or nfd:
        words.insert(int(rng.integers(len(words) + 1)), _WORDS_ACCENTED[int(rng.integers(len(_WORDS_ACCENTED)))])
    elif i % 9 == 4:
        return _WORDS_JA[int(rng.integers(len(_WORDS_JA)))] + (" " + words[0] if rng.random() < 0.5 else ""), False
    elif i % 11 == 6:
        words.append(_WORDS_OTHER[int(rng.integers(len(_WORDS_OTHER)))])
    return " ".join(words), nfd


def _album_names(rng: np.random.Generator) -> list[str]:
    """One artist's albums (1 to 3 titles): a word and a two-syllable name."""
    words = rng.integers(len(_WORDS), size=int(rng.integers(1, 4)))
    return [f"{_cap(_WORDS[int(k)])} {_word(rng, 2)}" for k in words]


def _track_id(rng: np.random.Generator) -> str:
    return "".join(_BASE62[int(j)] for j in rng.integers(62, size=22))
