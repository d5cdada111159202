"""The split pattern of the BPE tokenizer, and a way to run it with the standard library alone.

Before BPE sees any text, the text is cut into chunks, and merges never cross a chunk boundary:
" the" can become one token, but "e." or "dog " never does. The chunks are GPT-4's, with one change:

    '(?i:[sdmt]|ll|ve|re)            contractions: 's 'd 'm 't 'll 've 're (any case)
    [^\\r\\n\\p{L}\\p{N}]?+\\p{L}+      a word, with the one space or symbol before it (" the")
    \\p{N}                           ONE digit (GPT-4 has \\p{N}{1,3}: "2024" -> "202", "4")
     ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*      punctuation, with a space before and newlines after
    \\s*[\\r\\n]                      whitespace up to and including a line break
    \\s+(?!\\S)                       whitespace, leaving the last space to the next word
    \\s+                             any other whitespace (at the end of the text)

`PATTERN` is that pattern as a string in the syntax of the `regex` package, tiktoken and HF
tokenizers; it is what a saved tokenizer records, so anyone can rebuild it elsewhere.

Why single digits: the vocabularies this project trains are small (512-4096 tokens), and groups
of digits ("202", "19", ...) would take hundreds of them; and the post-training tasks are
arithmetic, where one token per digit lets the model line up units, tens, hundreds the same way
in every number (LLaMA's tokenizer splits digits too; nanochat keeps groups of 1-2).

Why a second, standard-library version: `\\p{L}` (any letter) and `\\p{N}` (any number) are
Unicode classes that Python's `re` lacks, and the core stays dependency-free (CPython 3.9+,
PyPy). So `stdlib_regex()` builds the same pattern for `re`:

* `\\p{L}` and `\\p{N}` become explicit character classes: the ranges of code points whose
  general category (from `unicodedata`) starts with "L" (Lu Ll Lt Lm Lo) or "N" (Nd Nl No).
* `\\s` becomes the Unicode White_Space property, listed below. `re`'s own `\\s` is not it: it
  also matches U+001C..U+001F (the file/group/record/unit separators).
* The possessive `?+` and `++` (which `re` only has from 3.11) are dropped: here they cannot
  change the match. A symbol taken by `[^\\r\\n\\p{L}\\p{N}]?` and given back would have to be a
  letter to satisfy `\\p{L}+`, and it is not; `++` ends its branch (`[\\r\\n]*` cannot fail).
* `(?i:...)` is the same in both: simple case folding, so 's also matches 'S and 'ſ (long s).

Both agree wherever the Unicode versions agree: code points that the running Python's
`unicodedata` (Unicode 14 in CPython 3.11) does not know yet, but a newer `regex` does, are
letters there and symbols here. Tests check the two patterns against each other.
"""

import functools
import re
import sys
import unicodedata

PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}"""
           r"""| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+""")

# Unicode's White_Space property (PropList.txt, unchanged since Unicode 6.3)
WHITE_SPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
               "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


def _class_body(code_points):
    """The inside of a `[...]` class for sorted code points: runs written as ranges, escaped."""
    parts, start, prev = [], None, None
    for cp in code_points:
        if start is not None and cp == prev + 1:
            prev = cp
            continue
        if start is not None:
            parts.append(_range(start, prev))
        start = prev = cp
    if start is not None:
        parts.append(_range(start, prev))
    return "".join(parts)


def _range(a, b):
    esc = "\\U%08x"  # `re` reads \UXXXXXXXX as that code point, inside a class too
    return esc % a if a == b else (esc % a) + "-" + (esc % b)


@functools.cache
def unicode_classes():
    """(letters, numbers, white space): class bodies for `re`, from this Python's unicodedata.
    Built once, on first use (about 0.2 s: one look at each of the 1.1 million code points)."""
    categories = list(map(unicodedata.category, map(chr, range(sys.maxunicode + 1))))
    letters = _class_body(cp for cp, cat in enumerate(categories) if cat[0] == "L")
    numbers = _class_body(cp for cp, cat in enumerate(categories) if cat[0] == "N")
    space = _class_body(sorted(map(ord, WHITE_SPACE)))
    return letters, numbers, space


def check_pattern(pattern):
    """ValueError unless `pattern` is `PATTERN`, the one pattern stdlib_regex can translate."""
    if not isinstance(pattern, str) or pattern != PATTERN:
        raise ValueError("unknown split pattern: only microgpt.tokenizers.pattern.PATTERN can "
                         "run without the `regex` package")


def stdlib_regex(pattern=PATTERN):
    """`pattern` compiled for the standard `re` module; only `PATTERN` is known (ValueError
    otherwise): this is a translation of one pattern, not of the `regex` syntax."""
    check_pattern(pattern)
    return _compiled()


@functools.cache
def _compiled():
    L, N, S = unicode_classes()
    # branch by branch, the same order as PATTERN (re, like regex, takes the first that matches)
    return re.compile(
        r"'(?i:[sdmt]|ll|ve|re)"          # contractions
        rf"|[^\r\n{L}{N}]?[{L}]+"           # a word, with one space/symbol before it
        rf"|[{N}]"                          # one digit
        rf"| ?[^{S}{L}{N}]+[\r\n]*"         # punctuation
        rf"|[{S}]*[\r\n]"                   # whitespace up to a line break
        rf"|[{S}]+(?![^{S}])"               # whitespace, not the space before a word
        rf"|[{S}]+"                         # whitespace at the end
    )


def split(text, pattern=PATTERN):
    """The chunks of `text`, in order; "".join(split(text)) == text."""
    return stdlib_regex(pattern).findall(text)
