# -*- coding: utf-8 -*-
# Copyright: chainops.validator contributors
# Apache License 2.0 (see LICENSE)
"""BIP-39 recovery codes (Polykey's node identity), checked on the controller before anything changes:
the number of words, each word in the English list, and the checksum the last word carries.

The word list is BIP-39's English list (bip39_english.py; its sha256, as one word a line, is checked on
first use). A problem names the position of a bad word, never a word of the code.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

from ansible_collections.chainops.validator.plugins.plugin_utils.bip39_english import WORDS

WORDLIST_SHA256 = "2f5eed53a4727b4bf8880d8f3f199efc90e58503646d9ff8eff3a2ed3b24dbda"
_WORDS = []


def wordlist():
    if not _WORDS:
        if hashlib.sha256(("\n".join(WORDS) + "\n").encode("ascii")).hexdigest() != WORDLIST_SHA256:
            raise ValueError("bip39_english.WORDS is not BIP-39's English word list")
        _WORDS.extend(WORDS)
    return _WORDS


def recovery_code_problem(code, words=24):
    """None when ``code`` is a valid BIP-39 mnemonic of ``words`` words, else what is wrong (no word shown)."""
    if not isinstance(code, str):
        return "must be a string of %d words" % words
    given = code.split()
    if len(given) != words:
        return "has %d words, a recovery code has %d" % (len(given), words)
    index = dict((word, position) for position, word in enumerate(wordlist()))
    bits = ""
    for position, word in enumerate(given, 1):
        if word not in index:
            return "word %d is not a BIP-39 word" % position
        bits += format(index[word], "011b")
    checksum_bits = len(bits) // 33
    entropy, checksum = bits[:-checksum_bits], bits[-checksum_bits:]
    digest = hashlib.sha256(int(entropy, 2).to_bytes(len(entropy) // 8, "big")).digest()
    if format(digest[0], "08b")[:checksum_bits] != checksum:
        return "fails the BIP-39 checksum (a word is wrong or out of order)"
    return None
