"""Choosing the SM2/SM3 library: correctness against OpenSSL, and speed (evidence/README.md).

For each candidate: SM3 of a 1 MiB and a 3 KiB message against ``openssl dgst -sm3``; an
SM2 signature (SM3, default distinguishing ID 1234567812345678) over a manifest-sized
message made by the candidate and checked by ``openssl pkeyutl -verify -rawin -digest sm3``,
and one made by OpenSSL checked by the candidate; then the mean time of sign, verify and
SM3 (1 MiB). ``openssl`` (the CLI, one process per signature) is measured as a baseline.

    .venv/bin/python bench/sm2_candidates.py
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def der_signature(r: int, s: int) -> bytes:
    def integer(value: int) -> bytes:
        raw = value.to_bytes(32, "big").lstrip(b"\x00") or b"\x00"
        if raw[0] & 0x80:
            raw = b"\x00" + raw
        return b"\x02" + bytes([len(raw)]) + raw

    body = integer(r) + integer(s)
    return b"\x30" + bytes([len(body)]) + body


def parse_der_signature(der: bytes) -> tuple[int, int]:
    assert der[0] == 0x30
    i = 2
    out = []
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        out.append(int.from_bytes(der[i + 2 : i + 2 + n], "big"))
        i += 2 + n
    return out[0], out[1]


def timed(fn: Callable[[], object], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1000


def main() -> None:
    work = Path(tempfile.mkdtemp())
    subprocess.run(["openssl", "genpkey", "-algorithm", "SM2", "-out", work / "k.pem"], check=True)
    subprocess.run(["openssl", "pkey", "-in", work / "k.pem", "-pubout", "-out", work / "pub.pem"], check=True)
    sec1 = subprocess.run(["openssl", "pkey", "-in", work / "k.pem", "-outform", "DER"], check=True, capture_output=True).stdout
    d_hex = sec1[7:39].hex()
    spki = subprocess.run(["openssl", "pkey", "-pubin", "-in", work / "pub.pem", "-outform", "DER"], check=True, capture_output=True).stdout
    pub_hex = spki[-64:].hex()
    message = os.urandom(3000)
    big = os.urandom(1 << 20)
    (work / "m").write_bytes(message)
    (work / "big").write_bytes(big)

    def openssl_sm3(path: Path) -> str:
        out = subprocess.run(["openssl", "dgst", "-sm3", "-r", path], check=True, capture_output=True, text=True).stdout
        return out.split()[0]

    def openssl_verify(sig: bytes) -> bool:
        (work / "sig").write_bytes(sig)
        r = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", work / "pub.pem", "-rawin", "-digest", "sm3",
                            "-in", work / "m", "-sigfile", work / "sig"], capture_output=True, text=True)
        return r.returncode == 0

    def openssl_sign() -> bytes:
        return subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", work / "k.pem", "-rawin", "-digest", "sm3", "-in", work / "m"],
                              check=True, capture_output=True).stdout

    reference = openssl_sign()
    rows = []

    # gmssl (pure Python)
    try:
        from gmssl import func, sm2, sm3

        signer = sm2.CryptSM2(private_key=d_hex, public_key=pub_hex)

        def gm_sign() -> bytes:
            sig = signer.sign_with_sm3(message, func.random_hex(signer.para_len))
            return der_signature(int(sig[:64], 16), int(sig[64:], 16))

        def gm_verify(der: bytes) -> bool:
            r, s = parse_der_signature(der)
            return bool(signer.verify_with_sm3(f"{r:064x}{s:064x}", message))

        def gm_sm3(data: bytes) -> str:
            return str(sm3.sm3_hash(func.bytes_to_list(data)))

        rows.append(("gmssl 3.2.2 (pure Python)", gm_sign, gm_verify, gm_sm3))
    except ImportError:
        pass

    # snowland-smx (import name pysmx)
    try:
        from pysmx.SM2 import Sign, Verify
        from pysmx.SM3 import hexdigest

        def sx_sign() -> bytes:
            raw = Sign(message, d_hex, os.urandom(32).hex(), 64)
            sig = raw if isinstance(raw, bytes) else bytes.fromhex(raw)
            return der_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"))

        def sx_verify(der: bytes) -> bool:
            r, s = parse_der_signature(der)
            return bool(Verify(r.to_bytes(32, "big") + s.to_bytes(32, "big"), message, pub_hex, 64))

        rows.append(("snowland-smx 1.1.0 (pure Python)", sx_sign, sx_verify, lambda data: str(hexdigest(data))))
    except ImportError:
        pass

    # OpenSSL's libcrypto through ctypes (what Takan uses), SM3 through hashlib
    from evidence.sm2 import SM2PrivateKey, sm3_hex

    ours_key = SM2PrivateKey.from_pem((work / "k.pem").read_bytes())
    ours_pub = ours_key.public_key()
    rows.append(("evidence.sm2: libcrypto 3 via ctypes, hashlib sm3", lambda: ours_key.sign(message), lambda der: ours_pub.verify(der, message), sm3_hex))

    print("| library | SM3 = openssl | its SM2 sig verified by openssl | openssl's sig verified by it | sign | verify | SM3 1 MiB |")
    print("|---|---|---|---|---|---|---|")
    expected_sm3 = openssl_sm3(work / "big"), openssl_sm3(work / "m")
    for name, sign, verify, sm3_of in rows:
        try:
            sm3_ok = (sm3_of(big), sm3_of(message)) == expected_sm3
        except Exception as exc:  # a candidate that fails is reported, not fatal
            sm3_ok = f"error {exc!r}"  # type: ignore[assignment]
        try:
            ours = sign()
            ours_ok: object = all(openssl_verify(sign()) for _ in range(5))
        except Exception as exc:
            ours_ok = f"error {exc!r}"
        try:
            theirs_ok: object = verify(reference)
        except Exception as exc:
            theirs_ok = f"error {exc!r}"
        try:
            t_sign = f"{timed(sign, 20):.1f} ms"
            t_verify = f"{timed(lambda: verify(ours), 20):.1f} ms"
        except Exception as exc:
            t_sign = t_verify = f"error {exc!r}"
        t_sm3 = f"{timed(lambda: sm3_of(big), 2):.0f} ms"
        print(f"| {name} | {sm3_ok} | {ours_ok} | {theirs_ok} | {t_sign} | {t_verify} | {t_sm3} |")
    t_cli = timed(openssl_sign, 10)
    t_dgst = timed(lambda: openssl_sm3(work / "big"), 5)
    print(f"| openssl 3 CLI (a process per call) | yes | yes | yes | {t_cli:.1f} ms | - | {t_dgst:.0f} ms |")
    print(f"(sha256 of 1 MiB in hashlib: {timed(lambda: hashlib.sha256(big).digest(), 20):.1f} ms)")


if __name__ == "__main__":
    main()
