"""Field encryption: round trip, context binding, tampering, rotation, restarts, blind index."""

from __future__ import annotations

import base64
import re
import stat
from pathlib import Path

import pytest

from privacy.fieldcrypto import (
    DecryptionFailed,
    FieldCipher,
    FieldCryptoError,
    FieldKeys,
    MalformedToken,
    MissingKey,
    field_context,
    is_encrypted,
    kid_of,
)

ID_NUMBER = "371402199001011239"
CONTEXT = field_context("inspection", "20261126-ab12", "applicant.id_number")
TOKEN = re.compile(r"enc:v1:[0-9a-f]{16}:[A-Za-z0-9_-]+\Z")


@pytest.fixture
def keys(tmp_path: Path) -> FieldKeys:
    keys = FieldKeys(tmp_path / "field-keys")
    keys.start()
    return keys


@pytest.fixture
def cipher(keys: FieldKeys) -> FieldCipher:
    return FieldCipher(keys)


def test_round_trip_and_token_shape(cipher: FieldCipher, keys: FieldKeys) -> None:
    for plain in (ID_NUMBER, "13800138000", "JBSWY3DPEHPK3PXP", "", "张三 ✓"):
        token = cipher.encrypt(plain, CONTEXT)
        assert TOKEN.match(token), token
        assert kid_of(token) == keys.current_kid
        assert is_encrypted(token) and cipher.is_encrypted(token)
        assert plain not in token or plain == ""
        assert cipher.decrypt(token, CONTEXT) == plain
    # a fresh nonce every time: equal plaintexts do not give equal tokens
    assert cipher.encrypt(ID_NUMBER, CONTEXT) != cipher.encrypt(ID_NUMBER, CONTEXT)
    assert not is_encrypted(ID_NUMBER) and not is_encrypted(None)


def test_key_files_are_private(keys: FieldKeys) -> None:
    directory = keys.directory
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for path in directory.glob("*.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert len(base64.b64decode(path.read_bytes().strip())) == 32
    assert (directory / "current").read_text().strip() == keys.current_kid
    assert (directory / "index.key").exists()


def test_wrong_context_is_refused(cipher: FieldCipher) -> None:
    token = cipher.encrypt(ID_NUMBER, CONTEXT)
    other_record = field_context("inspection", "20261126-ffff", "applicant.id_number")
    other_field = field_context("inspection", "20261126-ab12", "applicant.contact_phone")
    for context in (other_record, other_field):
        with pytest.raises(DecryptionFailed, match="another record or field"):
            cipher.decrypt(token, context)


def test_tampered_ciphertext_is_refused(cipher: FieldCipher, keys: FieldKeys) -> None:
    token = cipher.encrypt(ID_NUMBER, CONTEXT)
    head, body = token.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    for index in (0, 13, len(raw) - 1):  # nonce, ciphertext, tag
        changed = bytearray(raw)
        changed[index] ^= 0x01
        forged = head + ":" + base64.urlsafe_b64encode(bytes(changed)).rstrip(b"=").decode()
        with pytest.raises(DecryptionFailed, match=keys.current_kid):
            cipher.decrypt(forged, CONTEXT)
    with pytest.raises(MalformedToken):
        cipher.decrypt(head + ":" + body[:10], CONTEXT)
    with pytest.raises(MalformedToken):
        cipher.decrypt("enc:v1:../../etc/passwd:AAAA", CONTEXT)
    with pytest.raises(MalformedToken):
        cipher.decrypt(ID_NUMBER, CONTEXT)


def test_relabelling_with_another_key_id_fails(cipher: FieldCipher, keys: FieldKeys) -> None:
    token = cipher.encrypt(ID_NUMBER, CONTEXT)
    new = keys.rotate()
    relabelled = token.replace(kid_of(token), new)
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(relabelled, CONTEXT)


def test_rotation_keeps_old_values_and_reencrypt_moves_them(cipher: FieldCipher, keys: FieldKeys) -> None:
    old_kid = keys.current_kid
    old = cipher.encrypt(ID_NUMBER, CONTEXT)
    new_kid = keys.rotate()
    assert new_kid != old_kid and keys.current_kid == new_kid
    assert keys.kids() == sorted([old_kid, new_kid])
    assert cipher.decrypt(old, CONTEXT) == ID_NUMBER
    moved = cipher.reencrypt(old, CONTEXT)
    assert kid_of(moved) == new_kid
    assert cipher.decrypt(moved, CONTEXT) == ID_NUMBER
    assert cipher.reencrypt(moved, CONTEXT) == moved  # already current: unchanged
    assert kid_of(cipher.encrypt("x", CONTEXT)) == new_kid
    with pytest.raises(DecryptionFailed):
        cipher.reencrypt(old, "inspection:other:applicant.id_number")  # context still enforced
    with pytest.raises(FieldCryptoError, match="already encrypted"):
        cipher.encrypt(old, CONTEXT)


def test_a_restart_reads_the_same_keys(tmp_path: Path, cipher: FieldCipher, keys: FieldKeys) -> None:
    token = cipher.encrypt(ID_NUMBER, CONTEXT)
    keys.rotate()
    again = FieldKeys(keys.directory)
    again.start()
    again.start()  # idempotent
    assert again.current_kid == keys.current_kid
    assert FieldCipher(again).decrypt(token, CONTEXT) == ID_NUMBER
    assert FieldCipher(again).lookup_hash(ID_NUMBER, "id_number") == cipher.lookup_hash(ID_NUMBER, "id_number")


def test_another_nodes_rotation_is_picked_up(keys: FieldKeys, cipher: FieldCipher) -> None:
    other = FieldKeys(keys.directory)
    other.start()
    token = FieldCipher(other).encrypt(ID_NUMBER, CONTEXT)
    new = other.rotate()
    newer = FieldCipher(other).encrypt(ID_NUMBER, CONTEXT)
    assert cipher.decrypt(newer, CONTEXT) == ID_NUMBER  # unknown kid read from the directory
    assert cipher.decrypt(token, CONTEXT) == ID_NUMBER
    keys.reload()
    assert keys.current_kid == new


def test_a_missing_key_is_named(cipher: FieldCipher, keys: FieldKeys) -> None:
    old_kid = keys.current_kid
    token = cipher.encrypt(ID_NUMBER, CONTEXT)
    keys.rotate()
    (keys.directory / f"{old_kid}.key").unlink()
    fresh = FieldKeys(keys.directory)
    fresh.start()
    with pytest.raises(MissingKey, match=old_kid) as caught:
        FieldCipher(fresh).decrypt(token, CONTEXT)
    assert caught.value.kid == old_kid
    assert "restore" in str(caught.value)


def test_lost_index_key_or_pointer_is_not_silently_replaced(keys: FieldKeys) -> None:
    (keys.directory / "current").unlink()
    with pytest.raises(FieldCryptoError, match="current is missing"):
        FieldKeys(keys.directory).start()
    (keys.directory / "current").write_text(keys.current_kid)
    (keys.directory / "index.key").unlink()
    with pytest.raises(FieldCryptoError, match="index.key is missing"):
        FieldKeys(keys.directory).start()


def test_use_before_start_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="start"):
        FieldCipher(FieldKeys(tmp_path)).encrypt("x", CONTEXT)


def test_blind_index(cipher: FieldCipher, tmp_path: Path) -> None:
    first = cipher.lookup_hash(ID_NUMBER, "id_number")
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert cipher.lookup_hash(ID_NUMBER, "id_number") == first  # deterministic: searchable
    assert cipher.lookup_hash(f"  {ID_NUMBER} ", "id_number") == first  # stripped
    assert cipher.lookup_hash("３７１４０２１９９００１０１１２３９", "id_number") == first  # full-width digits
    assert cipher.lookup_hash(ID_NUMBER, "case") != first  # per purpose
    assert cipher.lookup_hash("371402199001011230", "id_number") != first
    # another installation (other index key) gives unrelated hashes
    other = FieldKeys(tmp_path / "elsewhere")
    other.start()
    assert FieldCipher(other).lookup_hash(ID_NUMBER, "id_number") != first
    # and rotation of the encryption key leaves the index alone
    cipher._keys.rotate()
    assert cipher.lookup_hash(ID_NUMBER, "id_number") == first
    with pytest.raises(ValueError, match="purpose"):
        cipher.lookup_hash(ID_NUMBER, "")


def test_field_context_rejects_ambiguous_parts() -> None:
    with pytest.raises(ValueError):
        field_context("inspection", "a:b", "applicant.id_number")
    with pytest.raises(ValueError):
        field_context("", "a", "x")
