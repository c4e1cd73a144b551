"""The layout of an inspection's archive package (a zip), shared by the writer and the checker.

::

    record.html                 the human-readable, printable record (Chinese)
    metadata.json               archival metadata, with the SHA-256 of every other file
    SHA256SUMS                  ``sha256sum -c`` input for every file but itself
    VERIFY.md, verify.sh        the outsider's kit: how to check everything with openssl,
                                sha256sum and ffprobe alone, and a POSIX script that does
    keys/<kid>.pem              the public key that signed the manifest
    evidence/manifest.json      the seal, exactly as stored
    evidence/manifest.json.sig
    evidence/events.jsonl
    evidence/media/...          (and stills/, photos/, signatures/: every object as stored)
"""

from __future__ import annotations

import re
import stat

from storage.keys import InvalidKey, validate_key

__all__ = [
    "EVIDENCE",
    "FORMAT",
    "KEYS",
    "METADATA",
    "RECORD",
    "SUMS",
    "VERIFY_DOC",
    "VERIFY_SCRIPT",
    "member_name_problem",
]

FORMAT = "takan-archive-package/1"
EVIDENCE = "evidence/"
KEYS = "keys/"
METADATA = "metadata.json"
RECORD = "record.html"
SUMS = "SHA256SUMS"
VERIFY_DOC = "VERIFY.md"
VERIFY_SCRIPT = "verify.sh"
TOP_FILES = (RECORD, METADATA, SUMS, VERIFY_DOC, VERIFY_SCRIPT)

_KEY_FILE = re.compile(r"keys/[0-9a-f]{16}\.pem\Z")


def member_name_problem(name: str, external_attr: int = 0) -> str | None:
    """Why a zip member name is unsafe or foreign to the layout, or None if it is fine.

    Refuses absolute paths, drive letters, backslashes, ``..`` and empty segments, control
    characters, symbolic links and anything outside the layout above.
    """
    if stat.S_ISLNK(external_attr >> 16):
        return "is a symbolic link"
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        return "is an absolute path"
    if "\\" in name:
        return "contains a backslash"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        return "contains a control character"
    if ".." in name.split("/"):
        return "climbs out of the package with '..'"
    if name in TOP_FILES or _KEY_FILE.match(name):
        return None
    if name.startswith(EVIDENCE):
        try:
            validate_key(name[len(EVIDENCE):])
        except InvalidKey:
            return "is not a valid evidence object name"
        return None
    return "is not part of the package layout (record.html, metadata.json, SHA256SUMS, VERIFY.md, verify.sh, keys/, evidence/)"
