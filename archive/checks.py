"""The four checks of an archive package before it is released (GB/T 18894 in spirit).

* **authenticity**: ``evidence/manifest.json.sig`` verifies over ``evidence/manifest.json``
  with the included ``keys/<kid>.pem``, and that key is the one with id ``<kid>``;
* **integrity**: every file's SHA-256 matches ``metadata.json`` and ``SHA256SUMS``, and every
  evidence object matches the signed manifest (none missing, none added);
* **usability**: media segments are WebM/Matroska (EBML header ``1A 45 DF A3``), images
  decode with Pillow, JSON files parse, ``record.html`` is well-formed UTF-8 HTML whose
  relative links resolve;
* **security**: no member name escapes the package or strays from the layout, and
  ``record.html`` (text and attributes) and ``metadata.json`` show no unmasked identity or
  mobile number.

Every problem names the file (and, where it helps, the line). :func:`check_package` reads
the zip without extracting it; it is blocking (run it in a thread from async code).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from PIL import Image

from evidence.manifest import EVENT_CHUNKS, EVENTS, MANIFEST, SEALS, SIGNATURE
from evidence.signing import key_id
from privacy.masking import find_sensitive

from .layout import EVIDENCE, KEYS, METADATA, RECORD, SUMS, member_name_problem

__all__ = ["CHECKS", "CheckResult", "PackageCheck", "check_package"]

CHECKS = ("authenticity", "integrity", "usability", "security")
EBML_MAGIC = b"\x1a\x45\xdf\xa3"
VOID_ELEMENTS = frozenset(
    ["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"]
)


@dataclass
class CheckResult:
    """One check's outcome: its name, the problems found (each naming a file), files looked at."""

    name: str
    problems: list[str] = field(default_factory=list)
    checked: int = 0

    @property
    def ok(self) -> bool:
        """Whether the check found nothing wrong."""
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        """The result as JSON-ready values."""
        return {"name": self.name, "ok": self.ok, "checked": self.checked, "problems": list(self.problems)}


@dataclass
class PackageCheck:
    """The four checks of one package, in the order of :data:`CHECKS`."""

    path: Path
    results: list[CheckResult]

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> list[CheckResult]:
        """The checks that found problems."""
        return [r for r in self.results if not r.ok]

    def __getitem__(self, name: str) -> CheckResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"no check named {name!r}; the checks are {', '.join(CHECKS)}")

    def summary(self) -> str:
        """One line per check: ``authenticity: OK`` or its first problem."""
        return "\n".join(
            f"{r.name}: OK ({r.checked} checked)" if r.ok else f"{r.name}: FAILED: {r.problems[0]}"
            + (f" (and {len(r.problems) - 1} more)" if len(r.problems) > 1 else "")
            for r in self.results
        )

    def as_json(self) -> dict[str, Any]:
        """The checks as JSON-ready values."""
        return {"path": str(self.path), "ok": self.ok, "checks": [r.as_json() for r in self.results]}


class _Package:
    """The zip's members by name; digests are streamed once and cached, so that a package of
    hours of video is checked without holding it in memory."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.infos = archive.infolist()
        self._info: dict[str, zipfile.ZipInfo] = {}
        for info in self.infos:
            if not info.is_dir():
                self._info.setdefault(info.filename, info)
        self._digests: dict[str, str] = {}
        self.unreadable: dict[str, str] = {}

    @property
    def names(self) -> list[str]:
        return sorted(self._info)

    def __contains__(self, name: str) -> bool:
        return name in self._info

    def size(self, name: str) -> int:
        return self._info[name].file_size

    def read(self, name: str) -> bytes:
        """The whole member (for small files: JSON, HTML, images, keys)."""
        return self.archive.read(self._info[name])

    def get(self, name: str) -> bytes | None:
        """The member, or None if it is missing or unreadable (then noted in ``unreadable``)."""
        if name not in self._info or name in self.unreadable:
            return None
        try:
            return self.read(name)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:  # e.g. a CRC mismatch
            self.unreadable[name] = str(exc)
            return None

    def head(self, name: str, size: int) -> bytes:
        with self.archive.open(self._info[name]) as handle:
            return handle.read(size)

    def sha256(self, name: str) -> str | None:
        """The member's SHA-256, or None if it cannot be read (noted in ``unreadable``)."""
        if name in self._digests:
            return self._digests[name]
        if name not in self._info or name in self.unreadable:
            return None
        digest = hashlib.sha256()
        try:
            with self.archive.open(self._info[name]) as handle:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            self.unreadable[name] = str(exc)
            return None
        self._digests[name] = digest.hexdigest()
        return self._digests[name]

    def json(self, name: str) -> Any:
        data = self.get(name)
        if data is None:
            raise KeyError(name)
        return json.loads(data)

    def evidence(self) -> list[str]:
        """Evidence object keys (relative to ``evidence/``)."""
        return [n[len(EVIDENCE):] for n in self.names if n.startswith(EVIDENCE)]


def _manifest(package: _Package, result: CheckResult) -> Mapping[str, Any] | None:
    name = EVIDENCE + MANIFEST
    if name not in package:
        result.problems.append(f"{name}: is missing")
        return None
    try:
        manifest = package.json(name)
    except KeyError:
        return None  # unreadable: integrity names it
    except ValueError as exc:
        result.problems.append(f"{name}: is not valid JSON ({exc})")
        return None
    if not isinstance(manifest, Mapping):
        result.problems.append(f"{name}: is not a JSON object")
        return None
    return manifest


def _authenticity(package: _Package) -> CheckResult:
    result = CheckResult("authenticity")
    manifest = _manifest(package, result)
    signature = package.get(EVIDENCE + SIGNATURE)
    if signature is None:
        result.problems.append(f"{EVIDENCE}{SIGNATURE}: is missing or unreadable")
    body = package.get(EVIDENCE + MANIFEST)
    if manifest is None or signature is None or body is None:
        if manifest is None and not result.problems:
            result.problems.append(f"{EVIDENCE}{MANIFEST}: cannot be read")
        return result
    kid = str((manifest.get("signature") or {}).get("key_id", ""))
    pem_name = f"{KEYS}{kid}.pem"
    pem = package.get(pem_name)
    if pem is None:
        result.problems.append(f"{pem_name}: the key that signed the manifest is not in the package")
        return result
    try:
        public = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        result.problems.append(f"{pem_name}: is not a PEM public key ({exc})")
        return result
    if not isinstance(public, Ed25519PublicKey):
        result.problems.append(f"{pem_name}: is not an Ed25519 key")
        return result
    result.checked = 2
    if key_id(public) != kid:
        result.problems.append(f"{pem_name}: holds the key with id {key_id(public)}, not {kid}")
    try:
        public.verify(signature, body)
    except InvalidSignature:
        result.problems.append(
            f"{EVIDENCE}{MANIFEST}: the signature does not verify with {pem_name}: the manifest or its signature was altered"
        )
    return result


def _integrity(package: _Package) -> CheckResult:
    result = CheckResult("integrity")
    problem = result.problems.append
    try:
        metadata = package.json(METADATA)
        fixity = dict(metadata["fixity"]["files"])
    except KeyError:
        problem(f"{METADATA}: is missing, unreadable, or has no fixity.files")
        fixity, metadata = {}, {}
    except (ValueError, TypeError) as exc:
        problem(f"{METADATA}: is not valid JSON with fixity.files ({exc})")
        fixity, metadata = {}, {}
    for name in package.names:
        digest = package.sha256(name)
        if name in (METADATA, SUMS) or digest is None:
            continue
        result.checked += 1
        expected = fixity.get(name)
        if expected is None:
            problem(f"{name}: is not listed in {METADATA} (added to the package)")
        elif digest != expected:
            problem(f"{name}: sha256 is {digest}, {METADATA} says {expected} (the file was altered)")
    for name, reason in sorted(package.unreadable.items()):
        problem(f"{name}: cannot be read from the zip ({reason}); the file was altered or damaged")
    for name in sorted(set(fixity) - set(package.names)):
        problem(f"{name}: is listed in {METADATA} but missing from the package")
    _check_sums(package, result)

    manifest = _manifest(package, result)
    if manifest is None:
        return result
    recorded = (metadata.get("evidence") or {}).get("manifest_sha256") if isinstance(metadata, Mapping) else None
    actual = package.sha256(EVIDENCE + MANIFEST)
    if recorded != actual:
        problem(f"{EVIDENCE}{MANIFEST}: sha256 is {actual}, {METADATA} evidence.manifest_sha256 says {recorded}")
    evidence = set(package.evidence())
    listed = set()
    for entry in manifest.get("objects") or []:
        key = str(entry.get("key"))
        name = EVIDENCE + key
        listed.add(key)
        if key not in evidence:
            problem(f"{name}: is in the manifest but missing from the package")
            continue
        digest = package.sha256(name)
        if digest is None:
            continue  # named above as unreadable
        if package.size(name) != entry.get("size"):
            problem(f"{name}: size is {package.size(name)}, the manifest says {entry.get('size')}")
        elif digest != entry.get("sha256"):
            problem(f"{name}: sha256 is {digest}, the manifest says {entry.get('sha256')}")
    for key in sorted(evidence - listed - set(SEALS)):
        problem(f"{EVIDENCE}{key}: is not in the manifest (added after sealing)")
    return result


def _check_sums(package: _Package, result: CheckResult) -> None:
    sums = package.get(SUMS)
    if sums is None:
        result.problems.append(f"{SUMS}: is missing or unreadable")
        return
    covered = set()
    for number, line in enumerate(sums.decode("utf-8", "replace").splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            result.problems.append(f"{SUMS} line {number}: is not '<sha256>  <file>'")
            continue
        covered.add(name)
        actual = package.sha256(name)
        if name not in package:
            result.problems.append(f"{name}: is listed in {SUMS} but missing from the package")
        elif actual is not None and actual != digest:
            result.problems.append(f"{name}: sha256 is {actual}, {SUMS} says {digest} (the file was altered)")
    for name in sorted(set(package.names) - covered - {SUMS}):
        result.problems.append(f"{name}: is not listed in {SUMS}")


class _HtmlChecker(HTMLParser):
    """Collects text and attributes, and tags opened but not closed (or closed unopened)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, int]] = []
        self.seen: set[str] = set()
        self.errors: list[str] = []
        self.text: list[tuple[int, str]] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.add(tag)
        line = self.getpos()[0]
        for name, value in attrs:
            if value is None:
                continue
            if name in ("src", "href"):
                if value.startswith("data:"):
                    continue  # embedded image bytes, not text
                self.links.append(value)
            self.text.append((line, value))
        if tag not in VOID_ELEMENTS:
            self.stack.append((tag, line))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID_ELEMENTS:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID_ELEMENTS:
            return
        if not self.stack or self.stack[-1][0] != tag:
            expected = f"</{self.stack[-1][0]}> (opened at line {self.stack[-1][1]})" if self.stack else "nothing"
            self.errors.append(f"line {self.getpos()[0]}: </{tag}> closes {expected}")
            if any(t == tag for t, _ in self.stack):
                while self.stack and self.stack[-1][0] != tag:
                    self.stack.pop()
                self.stack.pop()
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append((self.getpos()[0], data))


def _parse_record(package: _Package) -> tuple[_HtmlChecker | None, str | None]:
    if RECORD not in package:
        return None, f"{RECORD}: is missing"
    data = package.get(RECORD)
    if data is None:
        return None, f"{RECORD}: cannot be read from the zip"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"{RECORD}: is not UTF-8 ({exc})"
    checker = _HtmlChecker()
    checker.feed(text)
    checker.close()
    return checker, None


def _usable_evidence(package: _Package, key: str, result: CheckResult) -> None:
    name = EVIDENCE + key
    problem = result.problems.append
    top = key.split("/", 1)[0]
    extension = key.rsplit(".", 1)[-1].lower()
    if top == "media":
        kind = "media"
    elif extension in ("jpg", "jpeg", "png", "webp"):
        kind = "image"
    elif key == EVENTS or key.startswith(EVENT_CHUNKS):
        kind = "jsonl"
    elif extension == "json":
        kind = "json"
    else:
        return
    result.checked += 1
    try:
        data = package.head(name, 64) if kind == "media" else package.read(name)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        problem(f"{name}: cannot be read from the zip ({exc})")
        return
    if kind == "media":
        if not data.startswith(EBML_MAGIC):
            problem(f"{name}: is not a WebM/Matroska file (no EBML header 1A 45 DF A3)")
        elif b"\x42\x82" not in data or not (b"webm" in data or b"matroska" in data):
            problem(f"{name}: has an EBML header but no webm/matroska DocType")
    elif kind == "image":
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                if image.format not in ("JPEG", "PNG", "WEBP"):
                    problem(f"{name}: is a {image.format} image, not JPEG/PNG/WebP")
        except Exception as exc:  # Pillow raises many kinds: all mean "cannot be shown"
            problem(f"{name}: does not open as an image ({type(exc).__name__}: {exc})")
    elif kind == "jsonl":
        for number, line in enumerate(data.splitlines(), start=1):
            try:
                json.loads(line)
            except ValueError:
                problem(f"{name} line {number}: is not valid JSON")
                break
    else:
        try:
            json.loads(data)
        except ValueError as exc:
            problem(f"{name}: is not valid JSON ({exc})")


def _usability(package: _Package) -> CheckResult:
    result = CheckResult("usability")
    problem = result.problems.append
    for key in package.evidence():
        _usable_evidence(package, key, result)
    if METADATA in package:
        result.checked += 1
        try:
            package.json(METADATA)
        except KeyError:
            problem(f"{METADATA}: cannot be read from the zip")
        except ValueError as exc:
            problem(f"{METADATA}: is not valid JSON ({exc})")
    checker, error = _parse_record(package)
    if error:
        problem(error)
    elif checker is not None:
        result.checked += 1
        for tag in ("html", "head", "title", "body"):
            if tag not in checker.seen:
                problem(f"{RECORD}: has no <{tag}> element")
        for error_text in checker.errors[:5]:
            problem(f"{RECORD} {error_text}")
        for tag, line in checker.stack:
            problem(f"{RECORD}: <{tag}> opened at line {line} is never closed")
        for link in checker.links:
            target = link.split("#", 1)[0]
            if "://" in link or link.startswith(("/", "mailto:", "javascript:")):
                problem(f"{RECORD}: links outside the package ({link[:80]}); the record must be self-contained")
            elif target and target not in package:
                problem(f"{RECORD}: links to {link[:80]}, which is not in the package")
    return result


def _security(package: _Package) -> CheckResult:
    result = CheckResult("security")
    problem = result.problems.append
    names: set[str] = set()
    for info in package.infos:
        result.checked += 1
        reason = member_name_problem(info.filename, info.external_attr)
        if info.is_dir() and reason is None:
            reason = "is a directory entry"
        if reason:
            problem(f"{info.filename!r}: {reason}")
        if info.filename in names:
            problem(f"{info.filename!r}: appears twice in the zip")
        names.add(info.filename)
    checker, _ = _parse_record(package)
    if checker is not None:
        for line, text in checker.text:
            for finding in find_sensitive(text):
                problem(f"{RECORD}: {replace(finding, line=line + finding.line - 1)}")
    metadata = package.get(METADATA)
    if metadata is not None:
        for finding in find_sensitive(metadata.decode("utf-8", "replace")):
            problem(f"{METADATA}: {finding}")
    return result


def check_package(path: Path) -> PackageCheck:
    """Run the four checks on the zip at ``path``; see the module docstring."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        reason = f"{path.name}: is not a readable zip file ({exc})"
        return PackageCheck(path, [CheckResult(name, [reason]) for name in CHECKS])
    with archive:
        package = _Package(archive)
        # integrity first: it streams every digest once and notes unreadable members
        integrity = _integrity(package)
        results = [_authenticity(package), integrity, _usability(package), _security(package)]
    return PackageCheck(path, results)
